#!/usr/bin/env bash
# Make sure `python3 -m venv` works (Debian ships venv in a separate package).
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null; then
    echo "error: $py not found; install Python >= 3.11 (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
"$py" - <<'PY' || { echo "error: Fermentry needs Python >= 3.11" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "error: python venv is missing; run: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi
