# make demo: the main job on the bundled models and real sample data.
# make test: lint, format check and the whole test suite (make test-unit: the offline unit tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup data test test-unit lint format build demo clean train-defaults cards ablation evaluation pretraining-doc accept pretrain-long pretrain-long-evaluate pretrain-long-final

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

# One pytest worker per core, at most 4 (pytest-xdist): the tests wait on QGIS and subprocesses a lot.
# The suite runs as two pytest processes side by side (scripts/run_tests.py): the plugin's tests
# (tests/msgfm_qgis, with the top-level ones) in one, in their usual order, and tests/backend in
# the other.
# pytest-xdist's workers are not used: one crashed in QgsApplication.processEvents() when QGIS
# task tests ran in a worker after other files. MSGFM_TEST_SERIAL=1 runs one process;
# PYTEST_ARGS adds pytest arguments to both.
PYTEST_ARGS ?=

test: lint data
	$(PY) scripts/run_tests.py --build-test-models $(PYTEST_ARGS)

# The unit tests only: offline, without the sample data (synthetic fixtures from tests/data/).
test-unit: lint
	$(PY) scripts/run_tests.py -m "not integration" $(PYTEST_ARGS)

build: setup
	$(PY) build.py

demo: data build
	@bash scripts/demo.sh

# Every bundled model's algorithm, run from a freshly built zip through qgis_process on real scenes
# it never saw, scored against stated thresholds: docs/acceptance.md (about 8 min on 2 cores).
# `msgfm accept --render --gate` then moves the models that failed out of resources/models.
accept: data
	$(VENV)/bin/msgfm accept

# The bundled default models (resources/models), from the sample data, and their model cards.
train-defaults: data
	$(VENV)/bin/msgfm train-defaults --out resources/models
	$(PY) scripts/model_cards.py
	$(PY) scripts/doc_figures.py

# docs/models/*.md and the figures of README.md and the user guide (scripts/doc_figures.py) from
# resources/models/MANIFEST.json and the models' metadata.
cards: setup
	$(PY) scripts/model_cards.py
	$(PY) scripts/doc_figures.py

# The paper's ablations on the sample data: 5 arms x 3 seeds x 6 tasks (budget quick: about 10 min
# of finetuning and scoring per arm and seed on 2 cores, plus one pretraining per pretrained arm
# and seed), then docs/evaluation.md.
ablation: data
	$(VENV)/bin/msgfm ablate run --work-dir runs/ablation --seed 0 --seed 1 --seed 2

evaluation: setup
	cp runs/ablation/results.json docs/evaluation-results.json
	$(PY) scripts/evaluation_doc.py --results docs/evaluation-results.json --out docs/evaluation.md

# docs/pretraining.md (the recipe search and its probe) from docs/pretraining-results.json.
pretraining-doc: setup
	$(PY) scripts/pretraining_doc.py render
	$(PY) scripts/evaluation_doc.py

# Score the long runs' kept checkpoints (validation half, held-out check) into docs; resumable.
pretrain-long-evaluate: data
	$(PY) scripts/pretrain_long.py --out runs/long --evaluate
	cp runs/long/evaluation.json docs/pretraining-long-results.json
	$(PY) scripts/pretraining_doc.py render

# Once, when every long run has finished: select on validation, score the final half.
pretrain-long-final: data
	$(PY) scripts/pretrain_long.py --out runs/long --evaluate --final
	cp runs/long/evaluation.json docs/pretraining-long-results.json
	$(PY) scripts/pretraining_doc.py render

clean:
	rm -rf dist build demo_output .pytest_cache .ruff_cache .qgis-settings

# The long pretraining runs of docs/pretraining.md (2 recipes x 3 seeds x 20,000 steps: hours on
# 2 cores; run it in the background, it resumes where it stopped): runs/long, `--status` for progress.
pretrain-long: data
	$(PY) scripts/pretrain_long.py --out runs/long
