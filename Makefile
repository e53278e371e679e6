# The two commands a newcomer runs: `make repro` and `make test`. Each sets itself up.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install repro test sample raw clean-venv

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Raw data, for every dataset of params.yaml `datasets`: data/raw/<dataset>.dvc files committed
# without their data (a teammate's clone) are pulled from the DVC remote; a dataset still without
# a folder gets the synthetic sample; real data placed in data/raw/<dataset>/ is used as it is.
DVC      := PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc
DATASETS  = $(BIN)/python -c "from pipeline.core.params import load; print(*load()['datasets'])"
sample: install
	@pull=""; for f in data/weights.dvc data/raw/*.dvc; do \
		if [ -e "$$f" ] && [ ! -d "$${f%.dvc}" ]; then pull="$$pull $$f"; fi; done; \
	if [ -n "$$pull" ]; then $(DVC) pull $$pull; fi; \
	missing=""; for d in $$($(DATASETS)); do [ -d "data/raw/$$d" ] || missing="$$missing $$d"; done; \
	if [ -n "$$missing" ]; then echo "no data/raw/<dataset> for:$$missing: writing the synthetic sample"; \
		$(BIN)/fer-pipeline sample --out data/raw --datasets $$missing; \
	else echo "data/raw holds every dataset of params.yaml: using it"; fi

# DVC tracks each raw dataset as data/raw/<dataset>.dvc (new or changed data is (re-)added;
# unchanged data is not re-hashed): commit the .dvc files; `dvc push` shares the data. The same for
# data/weights (pretrained state dicts a recipe starts from: README "On a GPU"; empty in the demo)
raw: sample
	@mkdir -p data/weights
	@$(DVC) add --quiet data/weights $$(for d in $$($(DATASETS)); do echo data/raw/$$d; done)

# one Prefect API server for all stages (instead of a temporary one per stage process)
repro: raw
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pipeline.runner.prefect_api dvc repro
	$(BIN)/fer-pipeline report --print

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
