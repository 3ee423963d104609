#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs every test (unit and integration) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
