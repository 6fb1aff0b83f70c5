# The two quickstart commands (each does all set-up first): `make demo` and `make test`.
PY := .venv/bin/python
SEMHASH := .venv/bin/semhash
DEMO_DB := .cache/sample.db
# The set-up's stamp: the venv is (re)installed only when it is missing or pyproject.toml / the set-up changed.
INSTALLED := .venv/.installed

.PHONY: setup demo serve test test-fast lint bench clean

# Installs the project with its dev tools and the `ray` and `documents` extras (so `make test` runs their tests).
setup: $(INSTALLED)

$(INSTALLED): pyproject.toml tools/bootstrap.sh
	@bash tools/bootstrap.sh
	@touch $@

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
	$(PY) -m ruff check semhash tests benchmarks tools
	$(PY) -m ruff format --check semhash tests benchmarks tools
	$(PY) -m mypy

# The whole suite, the real-model (`slow`) tests included; CI runs this (.ci/run).
test: setup lint
	$(PY) -m pytest -q

# Unit tests only: no real model, no child processes, no GPU (under a minute on 2 idle cores; no lint).
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not process and not gpu"

# The quick benchmarks (a few minutes, no model, no prebuilt data, only the dev extras): the document readers,
# written to benchmarks/results/{office_extractors,extract}.json. The others need data sets built first and take
# up to hours (bench_pdf_extractors needs pypdf and pdfminer.six too): see benchmarks/README.md.
bench: setup
	$(PY) -m benchmarks.bench_office_extractors
	$(PY) -m benchmarks.bench_extract

clean:
	rm -rf .cache .pytest_cache .hypothesis
