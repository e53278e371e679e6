# The two commands a newcomer runs: `make repro` and `make test`. Each sets itself up.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install repro test sample clean-venv

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# sample data only when data/raw holds no dataset yet; real data placed there is used as it is
sample: install
	@if [ -z "$$(ls -A data/raw 2>/dev/null | grep -v '^\.')" ]; then \
		$(BIN)/fer-pipeline sample --out data/raw; \
	else echo "data/raw is not empty: using the data there"; fi

repro: sample
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/fer-pipeline report --print

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
