# The two quickstart commands (each does all set-up first): `make demo` and `make test`.
PY := .venv/bin/python
SEMHASH := .venv/bin/semhash
DEMO_DB := .cache/sample.db

.PHONY: setup demo serve test lint bench clean

# Installs the project with its dev tools and the `ray` and `documents` extras (so `make test` runs their tests).
setup:
	@bash scripts/bootstrap.sh

demo: setup
	@mkdir -p .cache
	$(SEMHASH) index data/sample --db $(DEMO_DB)
	$(SEMHASH) query "how do I fix a flat tyre on my bike" --db $(DEMO_DB) -k 5
	$(SEMHASH) dedup --db $(DEMO_DB)
	$(SEMHASH) info --db $(DEMO_DB)

# The search page and JSON API over the demo index, on http://127.0.0.1:8765/ (Ctrl-C stops it).
serve: demo
	$(SEMHASH) serve --db $(DEMO_DB)

lint: setup
	$(PY) -m ruff check semhash tests scripts
	$(PY) -m ruff format --check semhash tests scripts
	$(PY) -m mypy

test: setup lint
	$(PY) -m pytest -q

clean:
	rm -rf .cache .pytest_cache .hypothesis
