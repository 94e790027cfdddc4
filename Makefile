# Fermentry: the two commands are `make demo` and `make test`; `make bench` prints RATIO/FIGURE lines.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench servers simulate clean

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

servers:
	@scripts/ensure-servers.sh

demo: $(STAMP)
	$(VENV)/bin/fermentry demo

test: $(STAMP) servers
	$(PY) -m pytest -q

bench: $(STAMP) servers
	@set -e; for f in bench/*.py; do echo "== $$f"; $(PY) $$f; done

simulate: $(STAMP)
	$(VENV)/bin/fermentry simulate --reactors 3 --port 4840

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
