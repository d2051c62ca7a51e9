#!/usr/bin/env node
// Builds the test VM guest, and the offline cloud-init used to validate generated user-data, from
// Debian packages only (the package registry is the one source; nothing is installed on the host):
//   .cache/vm/vmlinux          the cloud kernel as an uncompressed PVH ELF (QEMU boots it directly,
//                              which skips the in-guest LZ4 decompression that costs seconds under TCG)
//   .cache/vm/vmlinuz          the same kernel as Debian ships it (bzImage), the fallback
//   .cache/vm/initramfs.cpio.gz busybox-static, virtio_net and its dependencies, the probe tool, /init
//   .cache/vm/guest.json       what was built (kernel release, paths), read by the tests
//   .cache/vm/cloud-init/      cloud-init and its Python dependencies, extracted (dpkg-deb -x), never
//                              installed: its services must not run on this machine
//   .cache/vm/debs/            the downloaded packages (kept: a rebuild of the guest alone needs no download)
// Idempotent: a stamp of the inputs (kernel package, busybox, this script, scripts/test-vm/*) skips
// a rebuild when nothing changed.
//
// Usage: node scripts/build-test-vm.mjs [--force]
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const GUEST_SRC = join(REPO_ROOT, 'scripts', 'test-vm');
const OUT = join(REPO_ROOT, '.cache', 'vm');
const DEB_CACHE = join(OUT, 'debs');
const BUSYBOX = '/bin/busybox';
const KERNEL_META = 'linux-image-cloud-amd64';
/**
 * virtio_net and what it needs on -M microvm, dependencies first (checked against modules.dep
 * below); virtio_blk for the optional Debian guest's root disk (ext4 is built in).
 */
const MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'failover', 'net_failover', 'virtio_net', 'virtio_blk'];
/** cloud-init's own package; its Python dependencies are resolved from apt's metadata. */
const CLOUD_INIT = 'cloud-init';

const force = process.argv.includes('--force');

function log(msg) {
  process.stderr.write(`build-test-vm: ${msg}\n`);
}
function fail(msg) {
  log(`error: ${msg}`);
  process.exit(1);
}
function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
}

for (const [bin, pkg] of [
  [BUSYBOX, 'busybox-static'],
  ['/usr/bin/gcc', 'gcc'],
  ['/usr/bin/lz4', 'lz4'],
  ['/usr/bin/cpio', 'cpio'],
  ['/usr/sbin/depmod', 'kmod'],
]) {
  if (!existsSync(bin)) fail(`${bin} is missing (apt-get install ${pkg}, or run scripts/setup.sh)`);
}

/** The versioned kernel package the meta-package points at today (e.g. linux-image-6.1.0-57-cloud-amd64). */
function kernelPackage() {
  const out = run('apt-cache', ['depends', KERNEL_META]);
  const m = /Depends:\s+(linux-image-[0-9][^\s]*-cloud-amd64)/.exec(out);
  if (!m) fail(`apt-cache depends ${KERNEL_META} names no linux-image-*-cloud-amd64:\n${out}`);
  return m[1];
}

/** Candidate versions of pkgs (one apt-cache call: each costs about a second); undefined if none. */
function candidates(pkgs) {
  const out = run('apt-cache', ['policy', ...pkgs]);
  const found = new Map();
  for (const block of out.split(/^(?=\S)/m)) {
    const name = /^(\S+):/.exec(block)?.[1];
    const cand = /Candidate:\s+(\S+)/.exec(block)?.[1];
    if (name && cand && cand !== '(none)') found.set(name, cand);
  }
  return found;
}

function packageVersion(pkg) {
  const v = candidates([pkg]).get(pkg);
  if (!v) fail(`no candidate for ${pkg} (apt-get update?)`);
  return v;
}

/**
 * The .debs of pkgs at their candidate versions, from DEB_CACHE, downloaded (apt-get download) only
 * when missing: a change to the guest's scripts then rebuilds without the registry.
 */
function debs(pkgs) {
  mkdirSync(DEB_CACHE, { recursive: true });
  // apt names files PKG_VERSION_ARCH.deb with the epoch's colon as %3a.
  const versions = candidates(pkgs);
  for (const p of pkgs) if (!versions.has(p)) fail(`no candidate for ${p} (apt-get update?)`);
  const want = new Map(pkgs.map((p) => [p, `${p}_${versions.get(p).replace(/:/g, '%3a')}_`]));
  const have = () => readdirSync(DEB_CACHE).filter((f) => f.endsWith('.deb'));
  const missing = pkgs.filter((p) => !have().some((f) => f.startsWith(want.get(p))));
  if (missing.length) {
    log(`downloading ${missing.join(' ')}`);
    // As root, apt warns that _apt cannot write here and downloads unsandboxed: harmless.
    run('apt-get', ['download', '-q', ...missing], { cwd: DEB_CACHE });
  }
  return pkgs.map((p) => {
    const f = have().find((x) => x.startsWith(want.get(p)));
    if (!f) fail(`apt-get download ${p} left no ${want.get(p)}*.deb in ${DEB_CACHE}`);
    return join(DEB_CACHE, f);
  });
}

/**
 * The Python packages cloud-init needs, all of them, so that the extracted copy never depends on
 * what the host's python3 happens to have (virtual packages, which cannot be downloaded, are left out).
 */
function cloudInitDeps() {
  const out = run('apt-cache', [
    'depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks',
    '--no-replaces', '--no-enhances', '--no-pre-depends', CLOUD_INIT,
  ]);
  const names = new Set();
  for (const line of out.split('\n')) if (/^python3-[a-z0-9.+-]+$/.test(line.trim())) names.add(line.trim());
  const versions = candidates([...names]);
  return [...names].sort().filter((n) => versions.has(n));
}

/** The ELF vmlinux inside a bzImage: the setup header says where the compressed payload is. */
function extractVmlinux(bzImage, tmp) {
  const img = readFileSync(bzImage);
  if (img.readUInt32LE(0x202) !== 0x53726448) fail(`${bzImage} is not a bzImage (no HdrS)`);
  const setupSects = img[0x1f1] || 4;
  const payloadOffset = img.readUInt32LE(0x248);
  const payloadLength = img.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  const payload = img.subarray(start, start + payloadLength);
  // Only LZ4 (Debian's cloud kernel) is handled; anything else falls back to the bzImage.
  if (payload.readUInt32LE(0) !== 0x184c2102) return undefined;
  const lz4 = join(tmp, 'payload.lz4');
  writeFileSync(lz4, payload);
  const out = join(tmp, 'vmlinux');
  try {
    // The kernel build appends the uncompressed size after the LZ4 frames, which lz4 may call
    // trailing garbage after writing the whole image: its exit status is not the verdict, the ELF is.
    execFileSync('lz4', ['-d', '-f', '-q', lz4, out], { stdio: 'ignore' });
  } catch {
    /* checked below */
  }
  if (!existsSync(out)) return undefined;
  const elf = readFileSync(out);
  if (elf.length < 1 << 20 || elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  // QEMU boots an ELF kernel only through its Xen PVH entry note (type 18).
  if (!elf.includes(Buffer.from('Xen\0'))) return undefined;
  return out;
}

/** modules.dep as name → [dependency paths], and name → path. */
function moduleIndex(root, kver) {
  const base = join(root, 'lib', 'modules', kver);
  const text = readFileSync(join(base, 'modules.dep'), 'utf8');
  const paths = new Map();
  const deps = new Map();
  const nameOf = (p) => p.split('/').pop().replace(/\.ko(\.xz|\.zst)?$/, '').replace(/-/g, '_');
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const name = nameOf(m[1]);
    paths.set(name, join(base, m[1]));
    deps.set(name, m[2].split(/\s+/).filter(Boolean).map(nameOf));
  }
  return { paths, deps };
}

/** The wanted modules plus their dependencies, each after what it depends on. */
function moduleOrder(index, wanted) {
  const order = [];
  const visit = (name, chain) => {
    if (order.includes(name)) return;
    if (chain.includes(name)) fail(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    if (!index.paths.has(name)) fail(`module ${name} is not in the kernel package`);
    for (const d of index.deps.get(name) ?? []) visit(d, [...chain, name]);
    order.push(name);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

function sha256(...parts) {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

const kpkg = kernelPackage();
const kversion = packageVersion(kpkg);
const ciVersion = packageVersion(CLOUD_INIT);
const sources = ['init.sh', 'lease-hook.sh', 'probe.c'].map((f) => readFileSync(join(GUEST_SRC, f)));
const stamp = sha256(kpkg, kversion, ciVersion, readFileSync(BUSYBOX), readFileSync(fileURLToPath(import.meta.url)), ...sources);
const stampFile = join(OUT, 'stamp');

if (!force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(join(OUT, 'guest.json'))) {
  log(`up to date (${kpkg} ${kversion}) in ${OUT}`);
  process.exit(0);
}

mkdirSync(OUT, { recursive: true });
const tmp = mkdtempSync(join(OUT, 'tmp-'));
try {
  const t0 = Date.now();
  const [kdeb] = debs([kpkg]);
  const kroot = join(tmp, 'kroot');
  run('dpkg-deb', ['-x', kdeb, kroot]);
  const kver = readdirSync(join(kroot, 'lib', 'modules'))[0];
  if (!kver) fail(`${kpkg} has no lib/modules/<release>`);
  // modules.dep is made at install time, not shipped: make it in the extracted tree.
  run('depmod', ['-b', kroot, kver]);
  const vmlinuz = join(kroot, 'boot', `vmlinuz-${kver}`);

  // initramfs tree
  const ird = join(tmp, 'initramfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'tmp']) mkdirSync(join(ird, d), { recursive: true });
  copyFileSync(BUSYBOX, join(ird, 'bin', 'busybox'));
  chmodSync(join(ird, 'bin', 'busybox'), 0o755);
  // /init runs before `busybox --install`: its interpreter must exist as a path already.
  execFileSync('ln', ['-s', 'busybox', join(ird, 'bin', 'sh')]);
  copyFileSync(join(GUEST_SRC, 'init.sh'), join(ird, 'init'));
  copyFileSync(join(GUEST_SRC, 'lease-hook.sh'), join(ird, 'lease-hook'));
  chmodSync(join(ird, 'init'), 0o755);
  chmodSync(join(ird, 'lease-hook'), 0o755);
  run('gcc', ['-static', '-Os', '-Wall', '-Werror', '-o', join(ird, 'bin', 'probe'), join(GUEST_SRC, 'probe.c')]);
  run('strip', [join(ird, 'bin', 'probe')]);
  const index = moduleIndex(kroot, kver);
  const order = moduleOrder(index, MODULES);
  for (const name of order) {
    const src = index.paths.get(name);
    const dst = join(ird, 'modules', `${name}.ko`);
    if (src.endsWith('.ko.xz')) writeFileSync(dst, execFileSync('xz', ['-dc', src], { maxBuffer: 64 << 20 }));
    else if (src.endsWith('.ko.zst')) writeFileSync(dst, execFileSync('zstd', ['-dc', src], { maxBuffer: 64 << 20 }));
    else copyFileSync(src, dst);
  }
  writeFileSync(join(ird, 'modules', 'order'), order.join('\n') + '\n');
  const cpio = join(tmp, 'initramfs.cpio.gz');
  execFileSync('sh', ['-c', 'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0 | gzip -1 > "$2"', 'sh', ird, cpio]);

  const vmlinux = extractVmlinux(vmlinuz, tmp);
  log(vmlinux ? 'PVH vmlinux extracted' : 'no PVH vmlinux (the bzImage will be booted)');

  // cloud-init, offline, for `cloud-init schema`
  const ciPkgs = [CLOUD_INIT, ...cloudInitDeps()];
  const ciRoot = join(tmp, 'cloud-init');
  for (const deb of debs(ciPkgs)) run('dpkg-deb', ['-x', deb, ciRoot]);
  if (!existsSync(join(ciRoot, 'usr', 'bin', 'cloud-init'))) fail('the cloud-init package has no usr/bin/cloud-init');

  // Move the results in place, then write guest.json and the stamp last (a crash leaves no stamp).
  for (const f of ['vmlinux', 'vmlinuz', 'initramfs.cpio.gz', 'guest.json', 'stamp']) rmSync(join(OUT, f), { force: true });
  rmSync(join(OUT, 'cloud-init'), { recursive: true, force: true });
  renameSync(cpio, join(OUT, 'initramfs.cpio.gz'));
  copyFileSync(vmlinuz, join(OUT, 'vmlinuz'));
  if (vmlinux) renameSync(vmlinux, join(OUT, 'vmlinux'));
  renameSync(ciRoot, join(OUT, 'cloud-init'));
  const guest = {
    kernelPackage: kpkg,
    kernelVersion: kversion,
    kernelRelease: kver,
    kernel: vmlinux ? 'vmlinux' : 'vmlinuz',
    initramfs: 'initramfs.cpio.gz',
    modules: order,
    cloudInit: { version: ciVersion, root: 'cloud-init', packages: ciPkgs },
  };
  writeFileSync(join(OUT, 'guest.json'), JSON.stringify(guest, null, 2) + '\n');
  writeFileSync(stampFile, stamp);
  log(`built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${kver}, ${guest.kernel}, modules ${order.join(' ')}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
