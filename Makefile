# The two commands: `make book` (set up, build the HTML book) and `make test` (set up, run every test).
# Both need only python3: everything else is installed into .venv/ with pinned versions.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB := $(BIN)/jupyter-book

# Where CIFAR-10 lives (unless RESNET_BOOK_DATA is set): the offline copy with the original pixels
# beside the repository if there is one (its checksummed parts, unpacked once into the cache), else
# the offline JPEG copy, else torchvision's download. Unpacked files, decoded tensors and downloads
# are cached in .cache/ (git-ignored).
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
ifeq ($(origin RESNET_BOOK_DATA), undefined)
  ifneq ($(wildcard $(SHARED_DATA)/cifar10-original/SHA256SUMS),)
    export RESNET_BOOK_DATA := $(SHARED_DATA)/cifar10-original
  else ifneq ($(wildcard $(SHARED_DATA)/cifar10-jpeg/train),)
    export RESNET_BOOK_DATA := $(SHARED_DATA)/cifar10-jpeg
  endif
endif
export RESNET_BOOK_CACHE ?= $(CURDIR)/.cache
export PYTHONHASHSEED := 0

NOTEBOOKS := $(wildcard notebooks/*.ipynb) $(wildcard book/*.ipynb)

# The execution cache is keyed on the notebooks' code only; when the library or the stored
# results change, executed outputs are stale, so the cache is dropped, and Sphinx's doctrees with it
# (else Sphinx re-reads only the notebooks whose source changed and keeps the others' stale outputs).
EXEC_INPUTS := $(shell find src/resnet_book data/results -type f -not -name '*.pyc' 2>/dev/null)
EXEC_STAMP := _build/.exec-inputs

.PHONY: book test setup assets unit notebooks book-strict browser sync-notebooks student autograde clean help

help:
	@echo "make book   - set up and build the HTML book into _build/html"
	@echo "make test   - set up and run every test (unit, notebooks, strict build, browser)"
	@echo "make student   - student notebooks (no solutions) in _build/student, one nbgrader assignment per chapter"
	@echo "make autograde [CHAPTER=2] - grade the submissions in _build/nbgrader/submitted/<student>/<assignment>/"

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==26.3"
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[book,test]"
	touch $(STAMP)

setup: $(STAMP)

assets: setup
	$(BIN)/python tools/fetch_assets.py

$(EXEC_STAMP): $(EXEC_INPUTS)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build && touch $@

book: setup assets $(EXEC_STAMP)
	$(JB) build .
	@echo
	@echo "The book is in _build/html. Open: file://$(CURDIR)/_build/html/index.html"

unit: setup
	$(BIN)/python -m pytest -q -m 'not browser' tests

notebooks: setup
	@if [ -n "$(NOTEBOOKS)" ]; then \
	  RESNET_BOOK_BUDGET=smoke $(BIN)/python -m pytest -q --nbval-lax -p no:cacheprovider $(NOTEBOOKS); \
	else echo "no notebooks yet"; fi

book-strict: setup assets $(EXEC_STAMP)
	$(JB) build . -W -n --keep-going

browser: setup
	bash tools/ensure_chromium.sh
	$(BIN)/python -m pytest -q -m browser tests

test: setup
	$(MAKE) unit
	$(MAKE) notebooks
	$(MAKE) book-strict
	$(MAKE) browser

sync-notebooks: setup
	$(BIN)/python tools/sync_notebooks.py

# Teaching: student notebooks and grading with nbgrader (book/for-instructors.md). nbgrader runs from
# the venv; its settings (cell timeout, smoke budget) are in nbgrader_config.py.
student: setup
	$(BIN)/python tools/make_student.py

CHAPTER ?=
autograde: setup
	$(BIN)/python tools/make_student.py autograde $(CHAPTER)

clean:
	rm -rf _build build
