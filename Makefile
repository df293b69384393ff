# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint benchmark benchmark-search benchmark-load clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The web server and a captioning worker together (manage.py serve); Ctrl-C stops both. The site answers at
# once; CAPTION_MODEL (clipcap-coco; offline: the demo) is made ready in the background, progress on the pages.
run: $(STAMP)
	$(PY) manage.py migrate --no-input
	$(PY) manage.py serve --prepare-model 127.0.0.1:$${PORT:-8000}

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

benchmark: $(STAMP)
	$(PY) benchmarks/generation.py

# Search at 100k and 1M photos: in memory on SQLite; `benchmarks/search.py --pgserver` adds pgvector.
benchmark-search: $(STAMP)
	$(PY) benchmarks/search.py

# Pages and API lists under 50 concurrent clients (wrk, gunicorn); needs DATABASE_URL=postgres://...
benchmark-load: $(STAMP)
	$(PY) benchmarks/load.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
