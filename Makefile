# Pipenv resolves packages through ${PIP_INDEX_URL} (see Pipfile); take it from pip when it is unset,
# so a mirror configured for pip serves this project unchanged.
PIP_INDEX_URL ?= $(shell pip config get global.index-url 2>/dev/null || python3 -c "from pip._internal.models.index import PyPI; print(PyPI.simple_url)")
export PIP_INDEX_URL

PROMOTE_SOURCE ?= airflow-stage:latest
PROMOTE_DEST ?= airflow-prod

.PHONY: install test lint promote demo

install:
	@command -v pipenv >/dev/null 2>&1 || python3 -m pip install --quiet pipenv
	pipenv install --dev --deploy

test: install
	pipenv run pytest -q

lint: install
	pipenv run ruff check workflow tests benchmarks

promote: install
	pipenv run workflow promote --source $(PROMOTE_SOURCE) --dest $(PROMOTE_DEST)

demo: install
	scripts/demo.sh
