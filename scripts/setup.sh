#!/usr/bin/env bash
# Prepares a Debian 12 machine with Node 20 to build, run and test arca. Idempotent: a second run
# only checks. Needs root (apt-get), Debian's mirror and the npm registry; nothing else is downloaded.
#
#   1. Debian packages that are missing (one apt-get update, one apt-get install), and wireguard-go
#      from Debian 13 (one .deb from the same mirror, checked against its published SHA-256)
#   2. npm dependencies from package-lock.json, then better-sqlite3's native addon if npm skipped it
#   3. The native addon into build/, then the TypeScript build into dist/
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)

# Everything arca or its tests run. make/g++/python3 build better-sqlite3 when npm does not.
DEBIAN_PACKAGES=(
  runc conmon crun nftables iproute2 util-linux procps socat attr busybox-static iperf3
  docker-registry skopeo buildah golang-github-containers-common tar gzip python3-docker docker-compose tini curl
  make g++ python3
  openvswitch-switch ovn-central ovn-host
  wireguard-go wireguard-tools tcpdump
  qemu-system-x86 libc6-dev lz4 cpio kmod debootstrap genisoimage
)

# Node's headers ship with Node itself here; without nodedir, node-gyp tries to download them.
NODE_DIR=${NODE_DIR:-/usr}

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
[ -r /etc/debian_version ] || say "warning: not Debian; package names assume Debian 12"

# --- 1. Debian packages -------------------------------------------------------------------------
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
# Any docker CLI will do (the tests use whichever is first on PATH); Debian's comes with docker.io.
if ! command -v docker >/dev/null 2>&1; then
  missing+=(docker.io)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  say "Debian packages present"
fi

# Debian 12's wireguard-go (0.0.20220316) predates offloads: every packet is one read or write on
# its TUN and one datagram on its socket, which caps a tunnel here at ~0.4 Gbit/s. Debian 13's
# build (0.0.20231211: TCP/UDP GSO and GRO on the TUN, UDP GSO on the socket, its own socket
# buffers) carries ~2 Gbit/s on the same cores, and arca's layout of veths and routed hops costs
# per packet, so offloads help it more than bare. It is a static Go binary (needs libc6 >= 2.34),
# so it installs on Debian 12 as it is. Pinned by version and checksum; if the mirror no longer
# has it, Debian 12's package stays and everything still works, only slower.
WG_GO_VERSION=0.0.20231211-1+b9
WG_GO_SHA256=cce54ea802611a45d07d1053ff285ea9f1a8f15499f3b86ccd8edd2b81ed7f7e
WG_GO_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ "$(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || true)" != "$WG_GO_VERSION" ]; then
  deb_dir=$(mktemp -d)
  deb="$deb_dir/wireguard-go_${WG_GO_VERSION}_amd64.deb"
  if [ "$(dpkg --print-architecture)" = amd64 ] &&
    curl -fsS --max-time 120 -o "$deb" "$WG_GO_MIRROR/pool/main/w/wireguard-go/wireguard-go_${WG_GO_VERSION}_amd64.deb" &&
    echo "$WG_GO_SHA256  $deb" | sha256sum -c --quiet -; then
    say "installing wireguard-go $WG_GO_VERSION (Debian 13's, with offloads)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >&2
  else
    say "warning: wireguard-go $WG_GO_VERSION could not be fetched or verified; keeping $(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || echo none) (slower tunnels)"
  fi
  rm -rf "$deb_dir"
else
  say "wireguard-go $WG_GO_VERSION present"
fi

# --- 2. npm dependencies ------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed (Node 20 is required)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node $(node -v) is too old: Node 20 or newer is required"
[ -f "$NODE_DIR/include/node/node_api.h" ] || say "warning: no Node headers in $NODE_DIR/include/node; native builds may fail"

sqlite_loads() {
  node -e "require('better-sqlite3')(':memory:').close()" >/dev/null 2>&1
}

# node_modules is reinstalled only when the lock file or Node changed since the last good setup.
stamp_file=node_modules/.arca-setup-stamp
stamp="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -v)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && sqlite_loads; then
  say "npm dependencies up to date"
else
  say "npm ci"
  rm -f "$stamp_file"
  # npm_config_nodedir reaches node-gyp should npm run install scripts (the machine's ~/.npmrc may
  # or may not set nodedir).
  npm_config_nodedir="$NODE_DIR" npm ci --no-audit --no-fund >&2
  if ! sqlite_loads; then
    # npm 11 may skip dependencies' install scripts (allowScripts), and better-sqlite3's script
    # wants a prebuilt binary from the internet anyway: compile it from its bundled sources.
    say "better-sqlite3 does not load; building it from source with node-gyp"
    node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
    (
      cd node_modules/better-sqlite3
      if [ -f "$node_gyp" ]; then
        node "$node_gyp" rebuild --release --nodedir="$NODE_DIR" >&2
      else
        npx --yes node-gyp rebuild --release --nodedir="$NODE_DIR" >&2
      fi
    ) || say "node-gyp rebuild failed"
    if ! sqlite_loads; then
      say "trying npm rebuild better-sqlite3"
      npm_config_nodedir="$NODE_DIR" npm rebuild better-sqlite3 >&2 || true
    fi
    sqlite_loads || {
      node -e "require('better-sqlite3')(':memory:')" || true
      die "better-sqlite3 still does not load after building it (see the errors above)"
    }
  fi
  echo "$stamp" >"$stamp_file"
  say "npm dependencies installed; better-sqlite3 loads"
fi

# --- 3. build -----------------------------------------------------------------------------------
say "building the native addon (netlink, libnftables, mounts)"
bash scripts/build-native.sh >&2 || die "native addon build failed"
node -e "const n=require('./build/arca_native.node'); if (!n.nftAvailable()) process.exit(1)" >/dev/null 2>&1 \
  || die "the native addon does not load, or libnftables.so.1 is missing"
say "building (tsc)"
npx --no-install tsc -p . >&2 || die "TypeScript build failed"
say "ready: $REPO_ROOT"
