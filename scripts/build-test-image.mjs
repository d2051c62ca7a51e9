#!/usr/bin/env node
// Builds the e2e test image as a `docker save`-style archive, without a registry or a daemon:
//   .cache/test-image.tar = manifest.json + repositories + <config sha>.json + <diff id>/layer.tar
// The one layer holds Debian's busybox-static (a symlink per applet), iperf3 with every shared
// library it needs, and a minimal /etc. Tar entries are sorted, owned by root and dated
// FIXED_MTIME, so the same machine produces the same image id every time.
//
// Usage: node scripts/build-test-image.mjs [--force] [--out PATH]
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TAG = 'arca-test/busybox:latest';
const FIXED_MTIME = 1704067200; // 2024-01-01T00:00:00Z
const BUSYBOX = '/bin/busybox';
const IPERF3 = '/usr/bin/iperf3';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const args = process.argv.slice(2);
const force = args.includes('--force');
const outIdx = args.indexOf('--out');
const OUT = outIdx >= 0 ? resolve(args[outIdx + 1]) : join(REPO_ROOT, '.cache', 'test-image.tar');

function log(msg) {
  process.stderr.write(`build-test-image: ${msg}\n`);
}

function fail(msg) {
  log(msg);
  process.exit(1);
}

for (const bin of [BUSYBOX, IPERF3]) {
  if (!existsSync(bin)) fail(`${bin} is missing (apt-get install busybox-static iperf3, or run scripts/setup.sh)`);
}

/** Shared objects `ldd` lists for a binary, as the paths the loader will look for (incl. itself). */
function sharedLibs(bin) {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const libs = [];
  for (const line of out.split('\n')) {
    const arrow = /=>\s+(\/\S+)/.exec(line);
    if (arrow) libs.push(arrow[1]);
    else {
      const bare = /^\s*(\/\S+)\s+\(/.exec(line);
      if (bare) libs.push(bare[1]);
    }
  }
  if (!libs.some((l) => l.includes('ld-linux'))) fail(`ldd ${bin} named no dynamic loader:\n${out}`);
  return libs;
}

const libs = sharedLibs(IPERF3);
const inputs = [BUSYBOX, IPERF3, ...libs.map((l) => realpathSync(l)), fileURLToPath(import.meta.url)];

if (!force && existsSync(OUT)) {
  const outTime = statSync(OUT).mtimeMs;
  if (inputs.every((p) => statSync(p).mtimeMs < outTime)) {
    log(`${OUT} is up to date`);
    process.exit(0);
  }
}

// ---------------------------------------------------------------------------------------------
// A small ustar writer: regular files, directories and symlinks are all this image needs.

function octal(n, width) {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header({ name, mode, size = 0, type, linkname = '', uid = 0, gid = 0 }) {
  const h = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    // Split at a slash so that prefix ≤ 155 and name ≤ 100 bytes.
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`path too long for ustar: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  if (Buffer.byteLength(linkname) > 100) throw new Error(`link target too long for ustar: ${linkname}`);
  h.write(base, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(uid, 8), 108, 'ascii');
  h.write(octal(gid, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(FIXED_MTIME, 12), 136, 'ascii');
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h.write(type, 156, 1, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(uid === 0 ? 'root' : '', 265, 32, 'ascii');
  h.write(gid === 0 ? 'root' : '', 297, 32, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}

/** Collects entries by path, then writes them sorted with parents created first. */
class TarBuilder {
  entries = new Map();

  dir(path, mode = 0o755, owner = 0) {
    this.parents(path);
    this.entries.set(path + '/', { name: path + '/', mode, type: '5', uid: owner, gid: owner });
  }
  file(path, data, mode = 0o644) {
    this.parents(path);
    this.entries.set(path, { name: path, mode, type: '0', data, size: data.length });
  }
  symlink(path, target) {
    this.parents(path);
    this.entries.set(path, { name: path, mode: 0o777, type: '2', linkname: target });
  }
  parents(path) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!this.entries.has(p + '/')) this.entries.set(p + '/', { name: p + '/', mode: 0o755, type: '5' });
    }
  }
  toBuffer() {
    const chunks = [];
    const names = [...this.entries.keys()].sort();
    for (const n of names) {
      const e = this.entries.get(n);
      chunks.push(header(e));
      if (e.data) {
        chunks.push(e.data);
        const pad = (512 - (e.data.length % 512)) % 512;
        if (pad) chunks.push(Buffer.alloc(pad));
      }
    }
    chunks.push(Buffer.alloc(1024));
    return Buffer.concat(chunks);
  }
}

// ---------------------------------------------------------------------------------------------
// The layer.

const layer = new TarBuilder();
for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'usr/local/bin', 'lib', 'lib64', 'etc', 'dev', 'proc', 'sys', 'var', 'run', 'home'])
  layer.dir(d);
layer.dir('tmp', 0o1777);
layer.dir('var/tmp', 0o1777);
layer.dir('root', 0o700);
layer.dir('home/app', 0o755, 1000);

layer.file('bin/busybox', readFileSync(BUSYBOX), 0o755);
const applets = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
  .split('\n')
  .map((s) => s.trim())
  .filter((s) => s && s !== 'bin/busybox');
for (const applet of applets) layer.symlink(applet, '/bin/busybox');

layer.file('usr/bin/iperf3', readFileSync(IPERF3), 0o755);
for (const lib of libs) layer.file(lib.slice(1), readFileSync(lib), 0o755);

layer.file(
  'etc/passwd',
  Buffer.from(
    'root:x:0:0:root:/root:/bin/sh\n' +
      'app:x:1000:1000:app:/home/app:/bin/sh\n' +
      'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  ),
);
layer.file('etc/group', Buffer.from('root:x:0:\napp:x:1000:\nnogroup:x:65534:\n'));
layer.file('etc/hosts', Buffer.alloc(0));
layer.file('etc/resolv.conf', Buffer.alloc(0));

const layerTar = layer.toBuffer();
const diffId = createHash('sha256').update(layerTar).digest('hex');

// ---------------------------------------------------------------------------------------------
// Config, manifest and the outer archive.

const created = new Date(FIXED_MTIME * 1000).toISOString();
const config = {
  architecture: 'amd64',
  os: 'linux',
  created,
  config: { Env: [PATH_ENV], Cmd: ['sh'] },
  rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
  history: [
    {
      created,
      created_by: `scripts/build-test-image.mjs: busybox-static (${applets.length} applets) + iperf3 + /etc`,
    },
  ],
};
const configJson = Buffer.from(JSON.stringify(config));
const configId = createHash('sha256').update(configJson).digest('hex');

const [repo, tag] = TAG.split(':');
const archive = new TarBuilder();
archive.file(`${configId}.json`, configJson);
archive.file(`${diffId}/layer.tar`, layerTar);
archive.file(
  'manifest.json',
  Buffer.from(JSON.stringify([{ Config: `${configId}.json`, RepoTags: [TAG], Layers: [`${diffId}/layer.tar`] }])),
);
archive.file('repositories', Buffer.from(JSON.stringify({ [repo]: { [tag]: diffId } })));

mkdirSync(dirname(OUT), { recursive: true });
const tmp = `${OUT}.tmp-${process.pid}`;
writeFileSync(tmp, archive.toBuffer());
renameSync(tmp, OUT);
log(
  `wrote ${OUT}: ${TAG}, image sha256:${configId.slice(0, 12)}, ` +
    `layer ${(layerTar.length / 1048576).toFixed(1)} MiB, ${applets.length} applets, ${libs.length} libraries`,
);
