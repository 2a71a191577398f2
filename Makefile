# make demo: the main job on the bundled models and real sample data.
# make test: lint, format check and the whole test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup data test lint format build demo clean train-defaults

setup:
	@bash scripts/setup.sh

data: setup
	@$(VENV)/bin/msgfm data fetch

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint data
	$(PY) -m pytest

build: setup
	$(PY) build.py

demo: data build
	@bash scripts/demo.sh

# The bundled default models (resources/models), from the sample data; not part of test or demo.
train-defaults: data
	$(VENV)/bin/msgfm train-defaults --out resources/models

clean:
	rm -rf dist build demo_output .pytest_cache .ruff_cache .qgis-settings
