# Two entry points on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results/demo

.PHONY: setup demo test clean-demo

setup: $(VENV)/.installed

# pip takes torch 2.14.1 / torchvision 0.29.1 (the newest the pyproject range admits) from the local wheel cache
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh $(OUT)

test: setup
	$(BIN)/python -m pytest

clean-demo:
	rm -rf $(OUT)

# the Snakemake workflow on the embedded default (config/config.yaml); outputs in results/
.PHONY: workflow
workflow: setup
	$(BIN)/snakemake --cores all
