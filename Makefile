# Two entry points on a fresh machine: `make demo` (the workflow on the embedded default) and `make test`
# (each sets up .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo seeds sweep test workflow

setup: $(VENV)/.installed

# pip takes torch 2.14.1 / torchvision 0.29.1 (the newest the pyproject range admits) from the local wheel cache
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# the Snakemake workflow on the embedded default (config/config.yaml, mnist-5k, offline): tables and figures in
# results/; interrupted, it resumes where it stopped
demo: setup
	$(BIN)/snakemake --cores all table1

# everything in config/config.yaml: Tables 1-3, the adaptive attacks, UMAP figures, sample grids, training curves
workflow: setup
	$(BIN)/snakemake --cores all

# the demo (Table 1) with a 2 x 2 loss-weight sweep of the combined purifier, selected on the validation split
# (config/sweep.yaml): results/tables/selection.{csv,md} too, and Table 1 from the kept model only. The target
# comes before --configfile, which takes every path after it.
sweep: setup
	$(BIN)/snakemake --cores all table1 --configfile config/sweep.yaml

# the demo (Table 1) over seeds 0, 1 and 2 (config/seeds.yaml): each seed's purifiers and evaluations under
# results/seeds/<seed>/, Table 1's cells the mean ± sd over the seeds, each seed's value in its CSVs
seeds: setup
	$(BIN)/snakemake --cores all table1 --configfile config/seeds.yaml

test: setup
	$(BIN)/python -m pytest

