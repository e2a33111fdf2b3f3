#!/usr/bin/env bash
# Installs what the browser test needs, once: Debian's Chromium (no browser
# download of playwright's own) and playwright-core from the npm registry.
# Idempotent; the dashboard test runs it before it starts.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser test needs Debian's chromium: run 'sudo apt-get install -y chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --silent
fi
