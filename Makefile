# FaceGate: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_VENV ?= .venv-bench
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench bench-scale install clean lint browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The server on http://127.0.0.1:8000 with a SQLite file under $(FACEGATE_DATA_DIR) (default ./data).
run: $(STAMP)
	$(VENV)/bin/facegate models
	$(VENV)/bin/facegate serve --host 127.0.0.1 --port 8000

# The web pages are tested in Debian's chromium (driven by Playwright); installed when missing
# and we may (root), otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium not installed: the browser tests will skip"; }

# Static checks first (seconds): style and errors, types, and the floors of the code.
lint: $(STAMP)
	$(VENV)/bin/ruff check facegate bench tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(STAMP) browser lint
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The peer library (face_recognition) lives in its own environment, never in FaceGate's, and so
# does scikit-image (its sample photos are the non-face images of bench/detection_threshold.py).
$(BENCH_VENV)/.installed: $(STAMP)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . click
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps face_recognition
	$(BENCH_VENV)/bin/python -m pip install --quiet scikit-image
	# The insightface package, pointed at the same buffalo_s files by bench/bulk_enroll.py.
	$(BENCH_VENV)/bin/python -m pip install --quiet insightface
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/engine.py

out/lfw_all_arcface.npz: $(STAMP)
	$(PY) bench/lfw_embeddings.py

# Scale and speed in one run (about an hour on 2 cores): search at 10k/100k/1M on SQLite and
# PostgreSQL, HTTP with 1 and 2 workers, profiles, then the engine and bulk-enrollment peers.
bench-scale: $(BENCH_VENV)/.installed out/lfw_all_arcface.npz
	$(PY) bench/scale.py --json out/scale.json

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info
