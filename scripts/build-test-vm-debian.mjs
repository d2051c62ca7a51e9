#!/usr/bin/env node
// Builds the optional full test guest: Debian 12 with systemd, cloud-init, nftables and
// wireguard-tools, as an ext4 image booted with the cloud kernel and the initramfs of
// scripts/build-test-vm.mjs (run that first). It needs the Debian mirror (debootstrap) and about
// 1.5 GB of scratch disk; its test is opt-in (ARCA_TEST_VM_DEBIAN=1), as one boot takes about
// 90 s under TCG on a quiet host.
//   .cache/vm/debian/rootfs.img   ext4, label arcaroot; the test boots it with -snapshot
// Usage: node scripts/build-test-vm-debian.mjs [--force]
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const VM = join(REPO_ROOT, '.cache', 'vm');
const OUT = join(VM, 'debian');
const SUITE = 'bookworm';
const INCLUDE = [
  'systemd-sysv', 'udev', 'kmod', 'iproute2', 'netbase', 'ifupdown', 'isc-dhcp-client', 'iputils-ping',
  'nftables', 'wireguard-tools',
];

function log(msg) {
  process.stderr.write(`build-test-vm-debian: ${msg}\n`);
}
function fail(msg) {
  log(`error: ${msg}`);
  process.exit(1);
}
function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20, ...opts });
}

if (process.getuid?.() !== 0) fail('run as root (debootstrap, chroot)');
for (const [bin, pkg] of [['/usr/sbin/debootstrap', 'debootstrap'], ['/usr/sbin/mke2fs', 'e2fsprogs']]) {
  if (!existsSync(bin)) fail(`${bin} is missing (apt-get install ${pkg})`);
}
const guestFile = join(VM, 'guest.json');
if (!existsSync(guestFile)) fail(`${guestFile} is missing: run node scripts/build-test-vm.mjs first`);
const guest = JSON.parse(readFileSync(guestFile, 'utf8'));
const img = join(OUT, 'rootfs.img');
const stampFile = join(OUT, 'stamp');
const stamp = JSON.stringify({ kernel: guest.kernelVersion, include: INCLUDE, script: createHash('sha256').update(readFileSync(fileURLToPath(import.meta.url))).digest('hex') });
if (!process.argv.includes('--force') && existsSync(img) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  log(`up to date: ${img}`);
  process.exit(0);
}

/** The mirror apt already uses here (the package registry), else Debian's. */
function mirror() {
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f)) : [])];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const one = /^deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+)\s+bookworm\s/m.exec(text);
    if (one) return one[1];
    const deb822 = /^URIs:\s*(https?:\/\/\S+)[\s\S]*?^Suites:.*\bbookworm\b/m.exec(text);
    if (deb822 && !/security/.test(deb822[1])) return deb822[1];
  }
  return 'http://deb.debian.org/debian';
}

mkdirSync(OUT, { recursive: true });
const tmp = mkdtempSync(join(OUT, 'tmp-'));
try {
  const t0 = Date.now();
  const root = join(tmp, 'root');
  const url = mirror();
  log(`debootstrap ${SUITE} from ${url}`);
  run('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, root, url], { stdio: ['ignore', 'ignore', 'inherit'] });
  // cloud-init cannot go in --include (debootstrap does not resolve its virtual dependencies):
  // apt in the chroot, with proc and dev in a private mount namespace that vanishes with it, and
  // a policy-rc.d so no package starts a service.
  writeFileSync(join(root, 'usr', 'sbin', 'policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  run('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    'mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" && DEBIAN_FRONTEND=noninteractive chroot "$1" apt-get install -y -q --no-install-recommends cloud-init',
    'sh', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(join(root, 'usr', 'sbin', 'policy-rc.d'));
  run('chroot', [root, 'apt-get', 'clean']);
  rmSync(join(root, 'var', 'lib', 'apt', 'lists'), { recursive: true, force: true });
  mkdirSync(join(root, 'var', 'lib', 'apt', 'lists', 'partial'), { recursive: true });

  // The cloud kernel's modules (wireguard, nf_tables, isofs come from there), unpacked apart and
  // copied under usr/: /lib is a symlink on merged-/usr Debian, which tar would replace.
  const kdeb = readdirSync(join(VM, 'debs')).find((f) => f.startsWith(`${guest.kernelPackage}_`));
  if (!kdeb) fail(`no ${guest.kernelPackage} .deb in ${join(VM, 'debs')} (node scripts/build-test-vm.mjs --force)`);
  const kroot = join(tmp, 'kroot');
  run('dpkg-deb', ['-x', join(VM, 'debs', kdeb), kroot]);
  cpSync(join(kroot, 'lib', 'modules', guest.kernelRelease), join(root, 'usr', 'lib', 'modules', guest.kernelRelease), { recursive: true });
  run('depmod', ['-b', root, guest.kernelRelease]);

  writeFileSync(join(root, 'etc', 'fstab'), '/dev/vda / ext4 rw,errors=remount-ro 0 1\n');
  writeFileSync(join(root, 'etc', 'hostname'), 'arca-vm\n');
  // Only NoCloud: cloud-init otherwise probes a dozen clouds (EC2's metadata address among them).
  mkdirSync(join(root, 'etc', 'cloud', 'cloud.cfg.d'), { recursive: true });
  writeFileSync(join(root, 'etc', 'cloud', 'cloud.cfg.d', '90-arca-test.cfg'), 'datasource_list: [ NoCloud, None ]\n');

  const out = join(tmp, 'rootfs.img');
  run('mke2fs', ['-q', '-t', 'ext4', '-d', root, '-L', 'arcaroot', '-F', out, '1500M']);
  rmSync(img, { force: true });
  renameSync(out, img);
  writeFileSync(stampFile, stamp);
  log(`built ${img} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
