#!/usr/bin/env bash
# Installs the third-party MCP client the gateway is tested with: the Python `mcp` package,
# pinned, in a venv at ${MCP_VENV:-target/mcp-venv}. Idempotent; prints the absolute path of
# the venv's python (tests run from another directory).
# Used by .ci/run (for the Rust test that spawns it) and scripts/mcp_smoke.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MCP_VERSION=2.3.0
venv=$(realpath -m "${MCP_VENV:-target/mcp-venv}")
py=$venv/bin/python
if [ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_VERSION')" 2>/dev/null; then
  echo "$py"; exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  echo "== installing python3-venv (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3-venv python3-pip >&2
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$py" -m pip install -q --disable-pip-version-check "mcp==$MCP_VERSION" >&2
echo "$py"
