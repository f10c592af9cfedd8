#!/usr/bin/env bash
# Rehearse the operator sequence against a local sandbox, with the installed `workflow` exactly as typed.
set -euo pipefail
cd "$(dirname "$0")/.."

workdir=$(mktemp -d)
pipenv run workflow --cluster airflow-prod sandbox >"$workdir/env" 2>"$workdir/sandbox.log" &
sandbox=$!
trap 'kill "$sandbox" 2>/dev/null || true; wait "$sandbox" 2>/dev/null || true; rm -rf "$workdir"' EXIT

for _ in $(seq 1 120); do
  grep -q '^export AWS_SECRET_ACCESS_KEY=' "$workdir/env" && break
  kill -0 "$sandbox" 2>/dev/null || { cat "$workdir/sandbox.log" >&2; exit 1; }
  sleep 0.5
done
grep -q '^export AWS_SECRET_ACCESS_KEY=' "$workdir/env" || { echo "sandbox did not start" >&2; exit 1; }
echo "# the sandbox's environment:"
cat "$workdir/env"
# Which release the services run (v1, airflow-prod:latest) and which one is staged (v2, airflow-stage:latest).
sed -n 's/^sandbox: services run/# services run/p' "$workdir/sandbox.log"
# shellcheck disable=SC1091
source "$workdir/env"
export WORKFLOW_POLL_INTERVAL=1
export WORKFLOW_STABILITY_WINDOW=5  # the sandbox's tasks start in seconds; production keeps the 30 s default

step() {
  echo
  echo "\$ $*"
  "$@"
}

services=(--cluster airflow-prod --scheduler airflow-prod-scheduler --worker airflow-prod-worker --web airflow-prod-web)
step pipenv run workflow promote --yes
step pipenv run workflow "${services[@]}" initialize --yes
step pipenv run workflow "${services[@]}" redeploy --yes
step pipenv run workflow --cluster airflow-prod --scheduler airflow-prod-scheduler stop-scheduler --yes
step pipenv run workflow --cluster airflow-prod --scheduler airflow-prod-scheduler start-scheduler
step pipenv run workflow "${services[@]}" status
echo
echo "demo: every step succeeded"
