# rbp: the two quick-start commands are `make run` and `make test`; both set up .venv first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARAMS ?= params/default.yaml
ARGS ?=
PYTEST_ARGS ?=
PORT ?= 5000
CORES ?= 2
TEST_WORKERS ?= auto

.PHONY: help install run test test-quick ui server workflow lab lint bench clean

help: ## list the targets
	@echo "rbp: RNA-protein binding site prediction (DNABERT vs biLSTM), tracked in MLflow"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo
	@echo "  variables: PARAMS=params/default.yaml  ARGS='-p data_dir=... -p folds=5'  PYTEST_ARGS='-k fasta'  TEST_WORKERS=auto"

# The environment is created on first use and updated in place only when pyproject.toml or
# constraints.txt change: never deleted, so a running kernel or job keeps working meanwhile.
# uv installs the pins in a fraction of pip's time, bytecode compiled up front. It reads no pip config:
# where pip is pointed at a folder of wheels (PIP_FIND_LINKS, which holds torch's CPU build on machines
# without a GPU), uv is pointed there too; elsewhere pip installs torch first, from wherever pip finds it.
UV_LINKS := $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))
$(VENV)/.installed: pyproject.toml constraints.txt
	test -f $(VENV)/pyvenv.cfg || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv $(if $(UV_LINKS),,torch==2.13.0)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode $(UV_LINKS) -c constraints.txt \
		-e '.[dev,workflow]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "rbp (.venv)" > /dev/null
	touch $@

install: $(VENV)/.installed ## create .venv with the project and its pinned dependencies

run: $(VENV)/.installed ## the main job: rbp run --params $(PARAMS) $(ARGS)
	$(BIN)/rbp run --params $(PARAMS) $(ARGS)

test: $(VENV)/.installed ## the test suite (pytest, one worker per core: TEST_WORKERS=0 runs it in one process)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-quick: $(VENV)/.installed ## the tests not marked slow (no papermill, no subprocesses): under a minute
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow" $(PYTEST_ARGS)

ui: $(VENV)/.installed ## MLflow UI on 127.0.0.1:$(PORT) over the project's store (mlruns/)
	$(BIN)/rbp ui --port $(PORT)

server: $(VENV)/.installed ## MLflow tracking server on 127.0.0.1:$(PORT) over the project's store, for jobs side by side
	$(BIN)/rbp server --port $(PORT)

workflow: $(VENV)/.installed ## the Snakemake workflow of workflow/config.yaml on $(CORES) cores (start `make server` first)
	@test -n "$$MLFLOW_TRACKING_URI" || echo "note: MLFLOW_TRACKING_URI is unset: the jobs write to mlruns/mlflow.db themselves; for jobs side by side start make server and export MLFLOW_TRACKING_URI=http://127.0.0.1:$(PORT)"
	$(BIN)/snakemake --cores $(CORES)

lab: $(VENV)/.installed ## JupyterLab on the project, opened at notebooks/, kernel "rbp (.venv)"
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(VENV)/.installed ## ruff over the package, tests and notebooks
	$(BIN)/ruff check .

bench: $(VENV)/.installed ## the CPU benchmarks under bench/ (see docs/benchmarks.md)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean: ## remove outputs/ (executed notebooks, folds); mlruns/ and .venv are kept
	rm -rf outputs
