# Pipenv hands pip no package index (see Pipfile), so pip's own configuration decides where packages come from:
# PIP_INDEX_URL, pip.conf, else pip's default index. PIPENV_PYPI_MIRROR, when set, serves as PIP_INDEX_URL here.
ifdef PIPENV_PYPI_MIRROR
export PIP_INDEX_URL ?= $(PIPENV_PYPI_MIRROR)
endif

PROMOTE_SOURCE ?= airflow-stage:latest
PROMOTE_DEST ?= airflow-prod

.PHONY: pipenv install install-runtime install-test-tools lock check-clean-install test lint docs promote demo

# pipenv itself, at least the version the Pipfile needs (scripts/ensure-pipenv).
pipenv:
	@scripts/ensure-pipenv

# Every package, development ones included, exactly as Pipfile.lock pins them.
install: pipenv
	pipenv install --dev --deploy
	@scripts/install-runtime --mark

# The runtime packages only, and only when the virtualenv lacks them or Pipfile.lock changed since
# (scripts/install-runtime): once installed, `make promote` needs no package index.
install-runtime:
	@scripts/install-runtime

# Re-lock after editing the Pipfile (plain `pipenv lock` cannot: see scripts/lock).
lock: pipenv
	scripts/lock

# README's first command, `pipenv install`, on a clean checkout with no index settings (CI runs it).
check-clean-install: pipenv
	scripts/check-clean-install

# What the contract tests run against, outside the project's virtualenv: Debian's docker-registry and skopeo (apt),
# and Apache Airflow in a virtualenv of its own (scripts/airflow-contract-env). Each step is a no-op once done.
install-test-tools:
	@scripts/install-registry-tools || echo "the registry contract tests will be skipped: docker-registry could not be installed"
	@scripts/airflow-contract-env >/dev/null || echo "the Airflow contract tests will be skipped: its virtualenv could not be installed"

# A worker per core and one more (tests/conftest.py); each test is its own unit of work, so the real-time tests
# (run first) go to different workers.
test: install install-test-tools
	pipenv run pytest -q -n auto --dist loadgroup

# Style, types, the import layers (pyproject.toml's import-linter contract), and the CLI reference against --help.
lint: install
	pipenv run ruff check workflow workflow_sandbox tests benchmarks scripts/cli-reference
	pipenv run mypy
	pipenv run lint-imports
	pipenv run python scripts/cli-reference --check

# docs/cli-reference.md from each command's --help, and docs/airflow.md's upgrade-order table from topology.py.
docs: install
	pipenv run python scripts/cli-reference

promote: install-runtime
	pipenv run workflow promote --source $(PROMOTE_SOURCE) --dest $(PROMOTE_DEST)

demo: install
	scripts/demo.sh
