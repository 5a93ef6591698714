#!/usr/bin/env bash
# Install what is missing, then run softphone with the given arguments.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install.sh"
exec "$root/.venv/bin/softphone" "$@"
