#!/usr/bin/env bash
# Runs arca's whole test suite on this machine: set-up, test image, unit then end-to-end tests.
# Needs root (network namespaces, mounts, runc). Extra arguments go to scripts/run-tests.mjs
# (e.g. `scripts/test.sh e2e smoke`).
set -euo pipefail

cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "test: run as root (sudo $0)" >&2; exit 1; }

bash scripts/setup.sh
node scripts/build-test-image.mjs
exec npm test --silent -- "$@"
