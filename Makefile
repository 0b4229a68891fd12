# The README's commands.  Every target creates .venv (Python 3.11) and installs
# the package editable into it when missing or when setup.cfg changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.zoo-installed

# One setting finds data: ZOO_DATA_DIR (or --data-dir).  Point it at the
# offline copies in ../shared/data when that folder exists and nothing is set.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin ZOO_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export ZOO_DATA_DIR := $(SHARED_DATA)
endif
endif
export TF_CPP_MIN_LOG_LEVEL ?= 3
export KERAS_BACKEND ?= tensorflow

PYTEST := $(BIN)/python -m pytest
ARGS ?=

.PHONY: setup train test slow bench bench-text bench-translator bench-speech bench-distribute bench-generation clean
setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## the main job: train, evaluate and export the CIFAR-10 example (cifar10_airbench, about 20 min on 2 cores with bf16)
train: $(STAMP)
	$(BIN)/python examples/train_cifar10.py $(ARGS)

## the default test run: fast tests only (slow ones are `make slow`), one pytest-xdist worker per core up to 4
## (661 s in one process, 402-476 s with two on a 2-core AVX2 EPYC, same session; ARGS="-n 0" runs them in one process).
## --dist loadfile keeps a file's tests on one worker, so a module's fixture (a trained run, an export) is built once:
## 674 s of CPU against 832 s with the default distribution.
test: $(STAMP)
	$(PYTEST) -m "not slow" -n auto --maxprocesses 4 --dist loadfile $(ARGS)

slow: $(STAMP)
	$(PYTEST) -m slow $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/cifar10.py $(ARGS)

bench-text: $(STAMP)
	$(BIN)/python bench/text.py $(ARGS)

bench-translator: $(STAMP)
	$(BIN)/python bench/translator.py $(ARGS)

bench-speech: $(STAMP)
	$(BIN)/python bench/speech.py $(ARGS)

bench-distribute: $(STAMP)
	$(BIN)/python bench/distribute.py $(ARGS)

bench-generation: $(STAMP)
	$(BIN)/python bench/generation.py $(ARGS)

clean:
	rm -rf runs build *.egg-info .pytest_cache
