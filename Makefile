# Two commands do all the set-up: `make run` (web app on seeds/) and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test bench chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this version resolves to a CPU build here (no CUDA packages).
	$(PY) -m pip install --quiet torch==2.13.0
	# the Milvus extra too: CI runs the Milvus backend's tests against a local milvus-lite server
	$(PY) -m pip install --quiet -e '.[test,milvus]'
	# Bytecode now, as a regular (non-editable) install would: with PYTHONDONTWRITEBYTECODE set,
	# every cold `qa ask` would otherwise compile the package's sources again (~0.05 s).
	$(PY) -m compileall -q qa app.py
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) chromium
	$(PY) -m pytest -q

# Debian's Chromium drives the browser tests (a test tool's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
