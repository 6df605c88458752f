# Two entry points for a fresh machine (see README.md):
#   make demo   run the default Snakemake pipeline on the embedded demo genomes, then list what it made
#               (Snakemake's own output goes to $(DEMO_LOG); make demo VERBOSE=1 prints it instead)
#   make test   run the test suite (CPU; GPU tests skip without CUDA)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genomamba-installed
CORES ?= 2
DEMO_LOG := results/demo/logs/snakemake.log
# `snakemake` and the `genomamba` its rules call, from the virtual environment
WITH_VENV := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: demo test lint clean-demo

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
ifeq ($(VERBOSE),1)
	$(WITH_VENV) snakemake --cores $(CORES) --configfile config/demo.yaml
else
	@mkdir -p $(dir $(DEMO_LOG))
	@echo "demo: running the pipeline on data/demo/ with $(CORES) cores (make demo VERBOSE=1 shows every step)"
	@$(WITH_VENV) snakemake --cores $(CORES) --configfile config/demo.yaml > $(DEMO_LOG) 2>&1 \
	  || { tail -n 25 $(DEMO_LOG); echo "demo failed: Snakemake's output is in $(DEMO_LOG), each step's log under results/demo/logs/" >&2; exit 1; }
endif
	@$(BIN)/python scripts/demo_summary.py results/demo

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check genomamba kernels tests benchmarks
	$(WITH_VENV) snakefmt --check Snakefile pipelines/*.smk

clean-demo:
	rm -rf results/demo
