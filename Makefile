# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
UV := $(PYTHON) -m uv
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-all bench table1 table2 figure4 clean

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

demo: install  ## build the demo corpus, train FCN+attention on it, print test WA/UA
	$(PY) -m ser_fcn fit --config experiments/demo.yaml

test: install  ## the test suite, without tests marked slow
	$(PY) -m pytest -m "not slow" -q

test-all: install
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
