#!/usr/bin/env bash
# Runs arca's whole test suite on this machine: set-up, test image, unit then end-to-end tests.
# Needs root (network namespaces, mounts, runc). Extra arguments go to scripts/run-tests.mjs
# (e.g. `scripts/test.sh e2e smoke`).
set -euo pipefail

cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "test: run as root (sudo $0)" >&2; exit 1; }

bash scripts/setup.sh
node scripts/build-test-image.mjs
# The VM tests skip (saying why) without their guest, so a registry hiccup here does not stop the rest.
node scripts/build-test-vm.mjs || echo "test: the test VM guest could not be built; the VM tests will skip" >&2
# The full Debian guest (debootstrap from the mirror, ~3 min) only for its opt-in test.
if [ "${ARCA_TEST_VM_DEBIAN:-}" = 1 ]; then node scripts/build-test-vm-debian.mjs; fi
exec npm test --silent -- "$@"
