#!/usr/bin/env bash
# Installs everything the tests need (apt packages, npm, the trainer's venv, a Kafka broker) and runs
# every test: Vitest (TypeScript) then pytest (trainer). Exit status: non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export CAFE_SHARED="${CAFE_SHARED:-$(cd .. && pwd)/shared}"
[ -d "$CAFE_SHARED/data" ] || { echo "test-all: shared data not found at $CAFE_SHARED (set CAFE_SHARED)" >&2; exit 2; }

CAFE_FULL_SETUP=1 bash scripts/setup.sh || { echo "test-all: setup failed" >&2; exit 1; }
bash scripts/setup-trainer.sh || { echo "test-all: trainer setup failed" >&2; exit 1; }
bash scripts/kafka.sh start || { echo "test-all: kafka broker did not start" >&2; exit 1; }
trap 'bash scripts/kafka.sh stop >/dev/null 2>&1' EXIT

status=0
npx vitest run || status=1
(cd trainer && .venv/bin/python -m pytest -q) || status=1
exit $status
