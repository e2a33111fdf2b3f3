#!/usr/bin/env bash
# Installs the peers the side-by-side benchmark runs against, inside bench/peers:
# APScheduler 3.x (pinned, with SQLAlchemy for its SQLite and PostgreSQL job
# stores) into a venv, node-cron 4.x (pinned by package-lock.json) into
# node_modules. Uses the machine's python3 and npm; idempotent.
set -euo pipefail
cd "$(dirname "$0")/peers"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
if [ ! -d node_modules/node-cron ]; then
    npm ci --no-audit --no-fund --silent
fi
