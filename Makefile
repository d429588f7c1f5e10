# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Everything they need is installed here, into ./.venv, from pinned versions.

PYTHON      ?= python3.11
VENV        := $(CURDIR)/.venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
COLL_ROOT   := $(CURDIR)/.cache/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/nexus/secrets

export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: all venv demo test test-fast test-matrix bench clean

all: test

# Re-runs only when a requirements file changed.
$(STAMP): requirements/runtime.txt requirements/test.txt requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/test.txt -c requirements/constraints.txt
	touch $@

# The collection is used in place: a symlink makes FQCNs resolve to this work tree.
$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

venv: $(STAMP) $(COLL_LINK)

demo: venv
	$(PY) scripts/demo.py

# The whole suite: pytest over tests/, then the supported version range (scripts/matrix.sh).
test: venv
	$(PY) -m pytest
	scripts/matrix.sh

# Oldest and newest ansible-core, oldest and newest host Python: sanity, unit, one round trip.
test-matrix: venv
	scripts/matrix.sh

# Everything but the slow quality gates and molecule scenarios.
test-fast: venv
	$(PY) -m pytest -m "not slow"

bench: venv
	$(PY) benchmarks/run.py $(BENCH)

clean:
	rm -rf $(VENV) .cache .pytest_cache
