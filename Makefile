# gradsweep: two commands on a fresh machine.
#   make sweep   set up .venv and run a real default sweep (contrastive, small scale, local Ray, SQLite)
#   make test    set up .venv, lint, and run the test suite
#   make bench   the benchmarks' quick modes (figures and commands in BENCHMARKS.md)
#   make bench-deps   Syne Tune for search_efficiency.py's syne_* methods (skipped without it)
#   make gpu-check   the <= 8-minute GPU check (needs CUDA; BENCHMARKS.md "The GPU check"); make gpu-wheels first
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gradsweep-installed
TORCH_VERSION ?= 2.13.0

TEST_WORKERS ?= 2
SWEEP_TRIALS ?= 8
SWEEP_ARGS   ?=

.PHONY: setup sweep test lint bench bench-deps clean gpu-check gpu-wheels

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml or setup.py changes; torch first, pinned, so pip never pulls CUDA wheels.
$(STAMP): $(PY) pyproject.toml setup.py
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

sweep: setup
	$(VENV)/bin/gradsweep launch contrastive --scale small --n-trials $(SWEEP_TRIALS) --baseline before --baseline after $(SWEEP_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two pytest-xdist workers: torch runs one thread per test process, so a serial run leaves the second
# core idle. tests/conftest.py groups each file on one worker (module fixtures start once) and
# schedules the slow groups first.
test: lint
	@scripts/ensure_chromium.sh
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup

# ~30 min on 2 CPU cores; benchmarks/gpu.py only where a CUDA GPU is (it refuses without one). The
# search-efficiency quick mode on one objective (multitower); all four objectives: BENCHMARKS.md "Freeze-thaw".
bench: setup
	$(PY) -u -m benchmarks.search_efficiency --quick --objectives benchmarks/spaces/multitower_bench.yaml --plot benchmarks/figures/search_efficiency_quick.png
	$(PY) -u -m benchmarks.overhead --quick
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(PY) -u -m benchmarks.gpu --quick; \
	else echo "benchmarks/gpu.py: skipped (no CUDA GPU here)"; fi

# Syne Tune for benchmarks/search_efficiency.py --methods syne_asha,syne_bohb (~75 MB). --no-deps: syne-tune
# requires xgboost, whose Linux wheel pulls nvidia-nccl-cu12 (350 MB); the [bench] extra has the rest.
SYNE_TUNE_VERSION ?= 0.16.0
bench-deps: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m pip install --quiet --no-deps "syne-tune==$(SYNE_TUNE_VERSION)"

# The GPU check: one command, <= 8 minutes on one GPU; JSON + summary under $$OUT or gpu_check_out/.
gpu-check:
	scripts/gpu_check.sh

# Wheels the GPU machine lacks (Python 3.12, torch there; no optuna, no pydantic; no network), for
# scripts/gpu_check.sh to install: optuna and its small pure-Python needs, pydantic. No Ray.
GPU_WHEELS ?= optuna==5.0.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 \
	pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-extensions==4.16.0 typing-inspection==0.4.5
gpu-wheels: setup
	rm -rf .whl && $(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform manylinux1_x86_64 -d .whl $(GPU_WHEELS)
	@du -sh .whl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
