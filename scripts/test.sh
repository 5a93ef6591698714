#!/usr/bin/env bash
# Install what is missing, then run every check: lint, types, import rules, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
export PATH="$PWD/.venv/bin:$PATH"
status=0
echo "== ruff";         ruff check softphone tests benchmarks || status=1
echo "== mypy";         mypy || status=1
echo "== import rules"; lint-imports --no-cache || status=1
echo "== pytest"
pytest -q -p no:cacheprovider "$@" || status=$?
if [[ $# -eq 0 ]]; then
    # The server suite again with every server on PostgreSQL (the store interface's other side),
    # then as one of several processes: PostgreSQL and the Redis bus (docs/deployment.md).
    echo "== pytest tests/server on PostgreSQL"
    pytest -q -p no:cacheprovider -n 2 --store postgres tests/server || status=$?
    echo "== pytest tests/server on PostgreSQL and Redis"
    pytest -q -p no:cacheprovider -n 2 --store postgres --bus redis tests/server || status=$?
    echo "== pytest tests/client on PostgreSQL and Redis"
    pytest -q -p no:cacheprovider -n 2 --store postgres --bus redis tests/client || status=$?
fi
exit $status
