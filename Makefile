# Sightline: `make run` to set up and run everything, `make test` to run every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# TypeScript checks the labeler's JSDoc types (no build step: the browser runs the files as they are).
TSC := $(VENV)/node/node_modules/.bin/tsc
TYPESCRIPT := typescript@5.9.3

.PHONY: run dev test fuzz install browser redis lint bench bench-compare clean

run: $(STAMP)
	$(PY) manage.py serve

# The same, served by runserver, which reloads on every code change.
dev: $(STAMP)
	$(PY) manage.py serve --dev

test: $(STAMP) browser redis lint
	$(PY) -m pytest $(PYTEST_ARGS)

# schemathesis with many examples per operation (make test runs 4): EXAMPLES=1000 make fuzz for a long run.
fuzz: $(STAMP)
	EXAMPLES=$${EXAMPLES:-200} $(PY) -m pytest tests/test_api_fuzz.py -p no:randomly

lint: $(STAMP) $(TSC)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TSC) -p static/tsconfig.json

$(TSC):
	@command -v npm >/dev/null || { echo "The JavaScript type check needs npm (apt-get install npm)"; exit 1; }
	npm install --prefix $(VENV)/node --no-audit --no-fund --silent $(TYPESCRIPT)

install: $(STAMP)

# Reinstall when the dependency list changes. torch and torchvision are pinned as a pair in pyproject.toml.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Sightline needs Python 3.11 ($(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium through Playwright (never `playwright install`).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Browser tests need Chromium: sudo apt-get install chromium"; exit 1; fi

# The routing and broker tests run real qcluster processes on Debian's redis-server.
redis:
	@if command -v redis-server >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else echo "The broker tests need Redis: sudo apt-get install redis-server"; exit 1; fi

bench: $(STAMP)
	$(PY) bench/upload.py
	$(PY) bench/grid.py
	$(PY) bench/annotations.py
	$(PY) bench/labeler.py
	$(PY) bench/training.py
	$(PY) bench/similarity.py
	$(PY) bench/near_duplicates.py
	$(PY) bench/smart.py
	$(PY) bench/exports.py

# The quick benchmarks at REF and at HEAD, one after the other on this machine, with HEAD/REF ratios.
bench-compare: $(STAMP)
	@test -n "$(REF)" || { echo "Say which commit to compare with: make bench-compare REF=<commit>"; exit 1; }
	$(PY) bench/compare.py $(REF)

clean:
	rm -rf $(VENV) .pytest_cache
