#!/usr/bin/env bash
# Rehearse the operator story against a local Airflow 3 sandbox, with the installed `workflow` exactly as typed:
# promote v2 (Airflow 3.3), upgrade with the migration, see v2 run, a rollback refused across the migration, the
# rollback with the database downgraded, see v1 run, then the scheduler commands.
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

# runs_only DIGEST: every service's tasks run that release, as `status` reports it.
runs_only() {
  local out
  out=$(pipenv run workflow --cluster airflow-prod --output json status)
  python3 - "$1" "$out" <<'PY'
import json, sys
digest, status = sys.argv[1], json.loads(sys.argv[2])
running = {(i["service"], i["digest"]) for i in status["images"] if i["digest"] and "airflow-prod" in i["image"]}
assert running and all(d == digest for _, d in running), f"expected every service on {digest[:19]}, got {running}"
print(f"# every service runs {digest[:19]}")
PY
}

v1=$(sed -n 's/^sandbox: services run v1 \(sha256:[0-9a-f]*\).*/\1/p' "$workdir/sandbox.log")
v2=$(sed -n 's/.*airflow-stage:latest holds v2 \(sha256:[0-9a-f]*\).*/\1/p' "$workdir/sandbox.log")

services=(--cluster airflow-prod --scheduler airflow-prod-scheduler --worker airflow-prod-worker --web airflow-prod-api-server)
step pipenv run workflow --cluster airflow-prod status
step pipenv run workflow promote --yes
step pipenv run workflow --cluster airflow-prod redeploy --dry-run --migrate
step pipenv run workflow "${services[@]}" redeploy --yes --migrate --snapshot airflow-prod-db
step pipenv run workflow --cluster airflow-prod status
runs_only "$v2"
step pipenv run workflow --cluster airflow-prod releases
# The database is at Airflow 3.3's schema now: v1 (Airflow 3.2) would crash-loop on it, so a plain rollback is
# refused, changing nothing; --downgrade-db moves the schema back with the current image first.
echo
echo "\$ pipenv run workflow --cluster airflow-prod rollback --yes   # refused: exit 2 expected"
if pipenv run workflow --cluster airflow-prod rollback --yes; then
  echo "demo: the rollback across the migration was not refused" >&2
  exit 1
fi
step pipenv run workflow --cluster airflow-prod rollback --yes --downgrade-db --snapshot airflow-prod-db
step pipenv run workflow --cluster airflow-prod status
runs_only "$v1"
step pipenv run workflow --cluster airflow-prod stop-scheduler --yes
step pipenv run workflow --cluster airflow-prod start-scheduler
step pipenv run workflow --cluster airflow-prod initialize --yes --from scheduler
echo
echo "demo: every step succeeded"
