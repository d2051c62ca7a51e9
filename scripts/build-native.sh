#!/usr/bin/env bash
# Builds arca's native helpers (native/arca_native.c) into build/arca_native.node with the C
# compiler and Node's own headers: no node-gyp, no download. libnftables is opened at run time,
# so no -dev package is needed. Skips the compile when the output is newer than the source.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_DIR=${NODE_DIR:-/usr}
src=native/arca_native.c
out=build/arca_native.node
mkdir -p build
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then exit 0; fi
cc -O2 -Wall -Wextra -Werror -fPIC -shared -std=gnu11 \
  -DNODE_GYP_MODULE_NAME=arca_native -DNAPI_VERSION=8 \
  -I"$NODE_DIR/include/node" -o "$out.tmp" "$src" -ldl -lpthread
mv "$out.tmp" "$out"
