# The commands a developer needs. Everything installs from package registries into .venv and
# ~/.cache/buildfarm; nothing is downloaded from anywhere else.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# Test processes for `make test`, each with its own control plane (pytest-xdist; files stay whole, so
# module fixtures are shared as before). 1: one process, no xdist.
JOBS ?= 3

.PHONY: setup test lint unit integration stress load chaos bench bench-api bench-artifacts demo down crds clean kind-up kind-test kind-down

$(BIN)/buildfarm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	@touch $@

setup: $(BIN)/buildfarm ## Install the package, test and lint tools, and build kube-apiserver, helm, versitygw and promtool (cached)
	bash hack/build-kube-apiserver.sh >/dev/null
	bash hack/build-helm.sh >/dev/null
	bash hack/build-s3-server.sh >/dev/null
	bash hack/build-promtool.sh >/dev/null

lint: setup ## ruff, mypy (strict), and the CRDs are up to date with the models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/buildfarm dev crds --check

test: lint ## Everything CI runs: lint, unit and integration tests (real etcd + kube-apiserver; JOBS=n processes)
	$(BIN)/pytest $(if $(filter-out 1,$(JOBS)),-n $(JOBS) --dist loadfile)

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

stress: setup ## Run the concurrency scenarios 100 times (ROUNDS=n to change) and print the pass count
	bash hack/stress.sh $(or $(ROUNDS),100)

load: setup ## A burst of 5,000 builds (BURST=n to change) against one operator: every build reaches a phase
	BUILDFARM_TEST_BURST_BUILDS=$(or $(BURST),5000) $(BIN)/pytest -q -p no:cacheprovider --timeout=3600 \
	  tests/integration/operator/test_load.py -k burst

chaos: setup ## Kill agents and operators at random while builds run, ROUNDS times (default 10), 60 builds each
	for i in $$(seq 1 $(or $(ROUNDS),10)); do \
	  BUILDFARM_TEST_CHAOS_BUILDS=60 $(BIN)/pytest -q -s -p no:cacheprovider --timeout=1200 \
	    tests/integration/agent/test_chaos.py | grep -E '^seed|passed|failed' || exit 1; \
	done

.PHONY: bench-artifacts-s3
bench-artifacts-s3: setup ## RSS growth and throughput of a 1 GB upload and download through the S3 backend (SIZE_MB=n)
	$(BIN)/python hack/bench_artifacts_s3.py --size-mb $(or $(SIZE_MB),1024)

bench: setup ## Time one scheduling cycle over a large queue (pure logic, no API server)
	$(BIN)/python hack/bench_scheduler.py

bench-api: setup ## The operator against a real API server: RAW, BACKLOG, LATENCY, WRITES, MEMORY (QUICK=1: small sizes)
	$(BIN)/python hack/bench_api.py $(BENCH_ARGS)

bench-artifacts: setup ## Stream 1 GB (SIZE_MB=n to change) through the artifact service: throughput and RSS growth vs a file copy
	$(BIN)/python hack/bench_artifacts.py --size-mb $(or $(SIZE_MB),1024)

demo: setup ## Start a local control plane, run the operator, queue sample builds and watch them assigned
	bash hack/demo.sh

down: ## Stop the local control plane that `make demo` left running
	$(BIN)/buildfarm dev controlplane down

KIND_CLUSTER := buildfarm
KIND_KUBECONFIG := .buildfarm/kind.kubeconfig

kind-up: ## Create the kind cluster of hack/kind.yaml (context kind-buildfarm) for Tilt and kind-test
	@command -v kind >/dev/null || { echo "kind is not installed: see https://kind.sigs.k8s.io" >&2; exit 1; }
	kind get clusters | grep -qx $(KIND_CLUSTER) || \
		kind create cluster --config hack/kind.yaml $(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE))

kind-test: setup kind-up ## Run the whole test suite against the kind cluster instead of a local control plane
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	kind get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG)
	BUILDFARM_TEST_USE_EXISTING_CLUSTER=1 BUILDFARM_TEST_KUBECONFIG=$(KIND_KUBECONFIG) $(BIN)/pytest

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

crds: ## Regenerate crds/ and the chart's generated files (CRD copy, permission table, values table)
	$(BIN)/buildfarm dev crds

clean: down
	rm -rf $(VENV) .buildfarm
