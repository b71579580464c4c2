# gradsweep: two commands on a fresh machine.
#   make sweep   set up .venv and run a real default sweep (contrastive, small scale, local Ray, SQLite)
#   make test    set up .venv, lint, and run the test suite
#   make bench   the benchmarks' quick modes (figures and commands in BENCHMARKS.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gradsweep-installed
TORCH_VERSION ?= 2.13.0

TEST_WORKERS ?= 2
SWEEP_TRIALS ?= 8
SWEEP_ARGS   ?=

.PHONY: setup sweep test lint bench clean

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
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup

# ~10 min on 2 CPU cores; benchmarks/gpu.py only where a CUDA GPU is (it refuses without one).
bench: setup
	$(PY) -u -m benchmarks.search_efficiency --quick --plot benchmarks/figures/search_efficiency_quick.png
	$(PY) -u -m benchmarks.overhead --quick
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(PY) -u -m benchmarks.gpu --quick; \
	else echo "benchmarks/gpu.py: skipped (no CUDA GPU here)"; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
