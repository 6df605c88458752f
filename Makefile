# Two entry points for a fresh machine (see README.md):
#   make demo   run the default Snakemake pipeline on the embedded demo genomes
#   make test   run the test suite (CPU; GPU tests skip without CUDA)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genomamba-installed
CORES ?= 2

.PHONY: demo test lint clean-demo

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check genomamba kernels tests benchmarks

clean-demo:
	rm -rf results/demo
