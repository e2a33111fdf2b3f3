#!/usr/bin/env bash
# Installs schemathesis (from PyPI, pinned) into tests/openapi/.venv, once.
# The OpenAPI conformance test runs it before it starts.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/st ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
