# Corral: `make help` lists the targets.
SHELL := /bin/bash
# PY=... picks the interpreter .venv is made from; by default scripts/python.sh does
PY ?=
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(HOME)/.corral
UP_FLAGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/corral: pyproject.toml
	py="$(PY)"; py="$${py:-$$(bash scripts/python.sh)}"; echo "making $(VENV) with $$py"; "$$py" -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	@touch $@

.PHONY: install
install: $(BIN)/corral ## create .venv with corral and the test and dev tools; compile the hot modules
	bash scripts/build-deps.sh $(BIN)/python
	$(BIN)/python scripts/compile.py

.PHONY: up
up: install ## start a local cluster (kubeconfig in DATA/kubeconfig)
	bash scripts/agent-deps.sh
	$(BIN)/corral up --data-dir $(DATA) $(UP_FLAGS)

.PHONY: test
test: install ## install everything the tests need and run the whole suite
	bash scripts/test-deps.sh
	bash scripts/pymesos-deps.sh $(BIN)/python
	$(BIN)/pytest -q -m "not slow" --durations=40 tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

.PHONY: test-slow
test-slow: install ## the long scenarios the suite leaves out (Marathon end to end, Chronos exactly-once, HPA on real pods, Mesos timers)
	bash scripts/test-deps.sh
	bash scripts/pymesos-deps.sh $(BIN)/python
	$(BIN)/pytest -q -m slow tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

.PHONY: check
check: $(BIN)/corral ## ruff format, ruff, mypy, import-linter
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: fmt
fmt: $(BIN)/corral ## format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

.PHONY: bench
bench: install ## run the benchmarks, write bench/results/*.json
	$(BIN)/python -m bench.run --out bench/results/report.json
	$(BIN)/python -m bench.server_start --out bench/results/server-start.json
	$(BIN)/python -m bench.scheduler_perf --mode registered --out bench/results/scheduler.json
	$(BIN)/python -m bench.scheduler_perf --mode shape --out bench/results/scheduler-shape.json
	$(BIN)/python -m bench.stack_floor --shape-report bench/results/scheduler-shape.json --out bench/results/stack-floor.json
	$(BIN)/python -m bench.write_cost --out bench/results/write-cost.json
	$(BIN)/python -m bench.client_cost --out bench/results/client-cost.json
	$(BIN)/python -m bench.controllers_perf --out bench/results/controllers.json
	$(BIN)/python -m bench.cronjob_perf --out bench/results/cronjobs.json
	$(BIN)/python -m bench.pod_startup --out bench/results/pod_startup.json
	$(BIN)/python -m bench.lifecycle_perf --out bench/results/lifecycle.json
	$(BIN)/python -m bench.pod_overhead --out bench/results/pod_overhead.json
	$(BIN)/python -m bench.services_perf --out bench/results/services.json
	$(BIN)/python -m bench.mesos_perf --out bench/results/mesos.json
	$(BIN)/python -m bench.chronos_perf --out bench/results/chronos.json
	$(BIN)/python -m bench.marathon_perf --out bench/results/marathon.json
	$(BIN)/python -m bench.footprint --out bench/results/footprint.json
	$(BIN)/python -m bench.portforward_perf --out bench/results/portforward.json
	$(BIN)/python -m bench.crd_perf --out bench/results/crds.json
	$(BIN)/python -m bench.authz_perf --out bench/results/authz.json
	$(BIN)/python -m bench.ha --out bench/results/ha.json
	$(BIN)/python -m bench.dashboard --out bench/results/dashboard.json

.PHONY: fuzz
fuzz: install ## schemathesis: 10,000 generated requests on the core and apps APIs (~15 min), bench/results/fuzz.json
	$(BIN)/python -m bench.fuzz_api --out bench/results/fuzz.json

.PHONY: bench-hour
bench-hour: install ## Chronos over a real-time hour: 1,000 one-minute jobs on hollow agents (60 min)
	$(BIN)/python -m bench.chronos_perf --sections cluster --windows 60 --accelerated-minutes 0 --out bench/results/chronos-hour.json

.PHONY: faults
faults: install ## fault injection, long forms (root): kills, partitions, flood, full disk; bench/results/faults.json
	bash scripts/test-deps.sh
	bash scripts/pymesos-deps.sh $(BIN)/python
	$(BIN)/python -m bench.faults --out bench/results/faults.json

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
