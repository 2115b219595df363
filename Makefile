# The two README commands: `make repro` and `make test`. Both create the virtual
# environment when it is missing and (re)install the project when pyproject.toml changes.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Stages run `python -m stages.<name>`: put the environment's python first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test bench lint clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	@for name in sdf collision raster memory readers roi_align radam train predict refine; do \
		echo "== bench/$$name.py"; $(PYTHON) -m bench.$$name || exit 1; \
	done

lint: $(STAMP)
	ruff check .

clean-venv:
	rm -rf $(VENV)
