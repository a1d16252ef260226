#!/usr/bin/env bash
# Installs the type checkers the generated clients are held to (tests/clients.rs), pinned, under
# target/: mypy (pip, in a venv at target/client-venv) and TypeScript (npm, in
# target/client-ts). Idempotent. Prints the environment the tests read, one `NAME=value` line
# each: HERO_MYPY, HERO_TSC, HERO_NODE. Node itself comes from Debian's `nodejs` package
# (.ci/run installs it with npm when missing).
# Used by .ci/run; by hand: `eval "$(bash scripts/client_tools.sh | sed 's/^/export /')"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MYPY_VERSION=1.18.2
TYPESCRIPT_VERSION=5.9.3

venv=$(realpath -m "${CLIENT_VENV:-target/client-venv}")
mypy=$venv/bin/mypy
if ! [ -x "$mypy" ] || [ "$("$mypy" --version 2>/dev/null | awk '{print $2}')" != "$MYPY_VERSION" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "mypy==$MYPY_VERSION" >&2
fi

ts=$(realpath -m "${CLIENT_TS:-target/client-ts}")
tsc=$ts/node_modules/.bin/tsc
if ! [ -x "$tsc" ] || [ "$("$tsc" --version 2>/dev/null | awk '{print $2}')" != "$TYPESCRIPT_VERSION" ]; then
  rm -rf "$ts"
  mkdir -p "$ts"
  npm install --silent --no-audit --no-fund --prefix "$ts" "typescript@$TYPESCRIPT_VERSION" >&2
fi

echo "HERO_MYPY=$mypy"
echo "HERO_TSC=$tsc"
echo "HERO_NODE=$(command -v node)"
