# The two commands: `make demo` and `make test`. Everything else they need is installed here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := msi-common msi-sandbox tap-crm-msi target-marketo-msi msi-doctor
PACKAGE_FILES := $(foreach p,$(PACKAGES),$(p)/pyproject.toml) requirements-dev.txt orchestrate/requirements.txt

# Third-party clients the sandbox must serve unmodified, each pinning its own old dependencies,
# so they live in a venv of their own (tests/msi-sandbox/salesforce/test_sf_third_party_tap.py).
THIRDPARTY := .venv-thirdparty
THIRDPARTY_STAMP := $(THIRDPARTY)/.installed
THIRDPARTY_PACKAGES := tap-salesforce==2.8.1

.PHONY: install test demo lint format bench chaos fuzz clean

$(STAMP): $(PACKAGE_FILES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(foreach p,$(PACKAGES),-e ./$(p)) -r requirements-dev.txt
	touch $(STAMP)

$(THIRDPARTY_STAMP): Makefile
	$(PYTHON) -m venv $(THIRDPARTY)
	$(THIRDPARTY)/bin/pip install --quiet $(THIRDPARTY_PACKAGES)
	touch $(THIRDPARTY_STAMP)

install: $(STAMP) $(THIRDPARTY_STAMP)

test: $(STAMP) $(THIRDPARTY_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The headline figures: tap-crm-msi records/s from both CRMs on the medium world;
# target-marketo-msi calls vs the minimum, an idle rerun and the rate at Marketo's limits;
# the score write-back into both CRMs; tap-marketo-msi people at 100,000.
bench: $(STAMP)
	$(BIN)/python benchmarks/tap_crm_extract.py --size medium --crm salesforce dynamics
	$(BIN)/python benchmarks/target_marketo_load.py
	$(BIN)/python benchmarks/writeback_crm.py --records 50000 --crm salesforce dynamics
	$(BIN)/python benchmarks/tap_marketo_people.py --sizes 100000

# The chaos tests alone (they also run in `make test`), ending with their table.
chaos: $(STAMP)
	$(BIN)/pytest -m chaos -q

# schemathesis against the Marketo sandbox, every operation the connectors call, at length
# (`make test` runs the same with 5 examples per operation and mode); prints cases and failures.
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 20261206
fuzz: $(STAMP)
	MSI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MSI_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest \
		tests/msi-sandbox/marketo/test_swagger_fuzz.py -q -p no:cacheprovider --timeout=3600

clean:
	rm -rf $(VENV) $(THIRDPARTY) .meltano .sandbox output
