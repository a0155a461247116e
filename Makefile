# `make test` and `make demo` set everything up on a fresh machine (CPU build of torch; no GPU needed).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo assets bench info clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,demo]"
	touch $(STAMP)

# System packages of the demo's real assets and report check (scripts/demo_assets.sh; apt-get when root).
assets:
	bash scripts/demo_assets.sh

# Tests use the assets when they can be installed and skip/fall back (with a message) when not.
test: $(STAMP)
	UNIALIGN_ASSETS_OPTIONAL=1 bash scripts/demo_assets.sh
	$(PY) -m pytest -q

demo: $(STAMP) assets
	$(VENV)/bin/unialign demo --out runs/demo

# The whole performance suite -> benchmarks/results/*.json + SUMMARY.md; `make bench BENCH_ARGS=--quick` for a smoke test.
bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

info: $(STAMP)
	$(VENV)/bin/unialign info configs/unialign_vitb16.yaml

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
