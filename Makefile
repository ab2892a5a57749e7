# optrepro: `make help` lists the targets. Everything installs what is missing into .venv first.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TRAIN := $(BIN)/optrepro-train
REPORT := $(BIN)/optrepro-report

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install optrepro with its test tools (nothing to do when up to date)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing optrepro into $(VENV) (first time: a few minutes)"
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
	  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@touch $@

demo: install ## Sine homotopy vs warm start vs random init, omega 137, profile=quick, packed into one process (CPU, minutes) -> outputs/demo/report.md
	$(TRAIN) -m experiment=ht/sine_f1 profile=quick method=random_init,warm_start,data_homotopy hydra/launcher=packed \
	  hydra.sweep.dir=outputs/demo/runs
	$(REPORT) outputs/demo/runs --out outputs/demo

test: install ## Fast test tier (what CI runs)
	$(BIN)/pytest -q

test-all: install ## Fast and slow tiers (subprocess sweeps, reports, resume)
	$(BIN)/pytest -q -m "not cluster"

test-cluster: install ## Cluster tier: a one-node SLURM cluster here (started if down, root on Debian), then stopped
	@if bash scripts/slurm_cluster.sh status >/dev/null 2>&1; then echo "test-cluster: using the running cluster"; \
	  else bash scripts/slurm_cluster.sh start >/dev/null && stop=1; fi; \
	  trap '[ -z "$${stop:-}" ] || bash scripts/slurm_cluster.sh stop' EXIT; \
	  eval "$$(bash scripts/slurm_cluster.sh env)"; \
	  OPTREPRO_REQUIRE_CLUSTER=1 $(BIN)/pytest -q -m cluster tests/cluster $(ARGS)

smoke: install ## Every preset under configs/experiment at profile=smoke (seconds each, no data needed)
	$(BIN)/python scripts/smoke.py

lint: install ## ruff lint and format check
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

ht-sine: install ## HT Figures 1, 2a, 2b, 5, 8 at paper scale (100 seeds per method and omega; GPU strongly advised)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/ht_sine.sh $(ARGS)

ht-classification: install ## HT Figures 3a, 3b, 6: MNIST -> FashionMNIST / CIFAR-10, 3 methods x 10 seeds (GPU advised)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/ht_classification.sh $(ARGS)

th-toys: install ## TH Figures 2.1, 3.2, 4.2, 4.3 and Table 3.1 (plain loops on a CPU, about 3 minutes)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_toys.sh $(ARGS)

th-grid: install ## TH ch. 4 stage one: every optimizer's grid on PROBLEM=a..f for 10% of the epochs (GPU)
	@test -n "$(PROBLEM)" || { echo "give PROBLEM=a|b|c|d|e|f (TH Table 4.1)"; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_deep.sh grid $(PROBLEM) $(ARGS)

th-fig4.4: install ## TH Figure 4.4 stage two for PROBLEM=a..d (after th-grid): chosen values, 3 seeds (GPU)
	@test -n "$(PROBLEM)" || { echo "give PROBLEM=a|b|c|d (TH Table 4.1)"; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_deep.sh fig4.4 $(PROBLEM) $(ARGS)

th-fig4.5: install ## TH Figure 4.5: as th-fig4.4 with every minibatch used twice (task.reuse_batch=2) (GPU)
	@test -n "$(PROBLEM)" || { echo "give PROBLEM=a|b|c|d (TH Table 4.1)"; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_deep.sh fig4.5 $(PROBLEM) $(ARGS)

th-fig4.6: install ## TH Figure 4.6: LeNet without (e) and with (f) BN, after th-grid PROBLEM=e and f (GPU)
	for p in $(or $(PROBLEM),e f); do PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_deep.sh fig4.6 $$p $(ARGS); done

th-fig2: install ## TH Figures 2.2-2.4 (NiN, batch 32) on PROBLEM=mnist|cifar10|cifar100: grid, then figures (GPU)
	for p in $(or $(PROBLEM),mnist cifar10 cifar100); do PATH="$(abspath $(BIN)):$$PATH" bash scripts/th_deep.sh fig2 $$p $(ARGS); done

gc-all: install ## GC Figures 4-7 (saddle, neural ODEs, deep MNIST MLP) at paper settings, then the report (GPU advised)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/gc_all.sh $(ARGS)

gc-saddle: install ## GC Figure 4 only, eq. 9 and the authors' gradient (plain loops on a CPU, seconds) -> outputs/reports/gc-saddle
	$(TRAIN) experiment=gc/saddle_f4 paths.run_dir=outputs/gc/saddle_f4
	$(TRAIN) experiment=gc/saddle_f4_authors paths.run_dir=outputs/gc/saddle_f4_authors
	$(REPORT) outputs/gc/saddle_f4 outputs/gc/saddle_f4_authors --out outputs/reports/gc-saddle

hta-t1: install ## HTA Table 1: BFGS with and without the homotopy, n = 2, 4, 6 (CPU, about 10 minutes)
	HTA_T1_ONLY=1 PATH="$(abspath $(BIN)):$$PATH" bash scripts/hta.sh $(ARGS)

hta-all: install ## HTA Tables 1-3, Figures 2-3 (VGG on CIFAR-10, 22 runs of 620 epochs: GPUs) -> outputs/reports/hta
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/hta.sh $(ARGS)

bench: install ## Speed ratios side by side: ensemble, framework vs hand-written loop, ops per step, optimizers, ResNet-20, sweeps
	$(BIN)/python scripts/bench_cli.py
	$(BIN)/python scripts/bench_ensemble.py
	$(BIN)/python scripts/bench_dispatch.py
	$(BIN)/python scripts/bench_optim.py
	$(BIN)/python scripts/bench_resnet.py
	$(BIN)/python scripts/bench_sweep.py

gpu-check: install ## On one GPU, < 8 min: CUDA tests, speed goals, HT F1b at paper scale -> outputs/gpu-check/ (ARGS=--help)
	$(BIN)/python scripts/gpu_check.py $(ARGS)

# What the lent GPU machine lacks (its Python has torch and Lightning, not Hydra), at the versions tested here, as
# wheels for the device tool's `carry` (README "GPU check"): .whl/ is git-ignored.
GPU_WHEELS := hydra-core omegaconf antlr4-python3-runtime
gpu-wheels: install ## Wheels of hydra-core, omegaconf, antlr4 (the versions in .venv) into .whl/, for the GPU machine
	rm -rf .whl
	$(BIN)/python -m pip wheel -q --disable-pip-version-check --no-deps -w .whl \
	  $$($(BIN)/python -c "from importlib.metadata import version; print(*(f'{p}=={version(p)}' for p in '$(GPU_WHEELS)'.split()))") \
	  2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	ls .whl

RUNS ?= outputs
docs: install ## docs/claims.md and the README's reproduction table from the runs under RUNS (default outputs/)
	$(BIN)/python -m optrepro.report.claims $(RUNS) --docs docs/claims.md --readme README.md

clean-outputs: ## Delete outputs/ (all runs, sweeps and reports)
	rm -rf outputs

.PHONY: help install demo test test-all test-cluster smoke lint ht-sine ht-classification th-toys th-grid th-fig4.4 \
  th-fig4.5 th-fig4.6 th-fig2 gc-all gc-saddle hta-t1 hta-all bench gpu-check gpu-wheels docs clean-outputs
