# Two commands on a fresh machine: `make demo` and `make test`; each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned in the same pip call so nothing pulls a multi-GB CUDA build (SPEC section 6).
TORCH_PIN ?= torch==2.13.0
EXTRAS ?= cpu,eval,video,lora,dev
STAMP := $(VENV)/.installed

.PHONY: install test test-slow demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH_PIN)"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(VENV)/bin/tiktalk demo

bench: $(STAMP)
	$(VENV)/bin/tiktalk bench retrieval --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check kg retrieval fusion baselines tiktalk tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks demo_out
