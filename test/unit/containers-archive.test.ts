import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, lstatSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RootedFs, MissingPath, release } from '../../src/containers/archive/rooted-path.js';
import { RootedExtractor } from '../../src/containers/archive/rooted-extractor.js';
import { TarReader, type TarEntry } from '../../src/containers/archive/tar-reader.js';
import { containerAbsPath } from '../../src/containers/archive/container-archive.js';
import { goFileMode } from '../../src/containers/archive/path-stat.js';
import { INIT_LAYER_PATHS, overlayChanges } from '../../src/containers/archive/overlay-changes.js';
import { overlayDiffTar } from '../../src/images/overlay-diff-tar.js';
import { memberHeader } from '../../src/images/tar-member.js';
import { commitReference } from '../../src/containers/container-committer.js';

describe('rooted paths', () => {
  let base: string;
  let root: string;
  let outside: string;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'arca-rooted-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(join(root, 'etc'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, 'etc', 'shadow'), 'inside\n');
    writeFileSync(join(outside, 'secret'), 'outside\n');
    symlinkSync('/etc/shadow', join(root, 'abs'));
    symlinkSync('../../../../..', join(root, 'up'));
    symlinkSync('/', join(root, 'slash'));
    symlinkSync(outside, join(root, 'host'));
    symlinkSync('loop2', join(root, 'loop1'));
    symlinkSync('loop1', join(root, 'loop2'));
  });

  after(() => rmSync(base, { recursive: true, force: true }));

  const resolved = (fs: RootedFs, p: string, followLast = true): string => {
    const r = fs.resolve(p, { followLast });
    try {
      return r.path;
    } finally {
      release(r);
    }
  };

  it('keeps absolute links, `..` climbs and `/` inside the root', () => {
    const fs = new RootedFs(root);
    try {
      assert.equal(resolved(fs, '/abs'), '/etc/shadow');
      assert.equal(resolved(fs, '/abs', false), '/abs');
      assert.equal(resolved(fs, '/up/etc/shadow'), '/etc/shadow');
      assert.equal(resolved(fs, '/slash/slash/up/etc'), '/etc');
      assert.equal(resolved(fs, '../../etc/shadow'), '/etc/shadow');
      // A link to a host path names the same path inside the root, which does not exist.
      assert.throws(() => fs.resolve('/host/secret'), MissingPath);
      assert.throws(() => fs.resolve('/loop1', { followLast: true }), /too many levels of symbolic links/);
      assert.throws(() => fs.resolve('/etc/shadow/x'), /not a directory/);
      assert.equal(resolved(fs, '/'), '/');
    } finally {
      fs.close();
    }
  });

  it('follows the last link only when asked, or with a trailing slash', () => {
    const fs = new RootedFs(root);
    try {
      assert.equal(resolved(fs, '/slash', false), '/slash');
      assert.equal(resolved(fs, '/slash/', false), '/');
      assert.ok(fs.resolve('/abs', { followLast: false }).stat.isSymbolicLink());
      assert.ok(goFileMode(fs.resolve('/abs', { followLast: false }).stat) >= 2 ** 27);
    } finally {
      fs.close();
    }
  });

  it('cleans paths as Docker does, keeping a trailing slash or dot', () => {
    assert.equal(containerAbsPath('etc/../etc/passwd'), '/etc/passwd');
    assert.equal(containerAbsPath('/data/.'), '/data/.');
    assert.equal(containerAbsPath('/data/'), '/data/');
    assert.equal(containerAbsPath('.'), '/.');
  });

  it('extracts an archive whose links point out without writing outside', async () => {
    const stage = join(base, 'stage');
    mkdirSync(join(stage, 'e'), { recursive: true });
    symlinkSync(outside, join(stage, 'evil'));
    writeFileSync(join(stage, 'e', 'f'), 'written\n');
    const tar = spawnSync('tar', ['-C', stage, '-c', '-f', '-', '--transform=s,^e/,evil/,', 'evil', 'e/f']);
    assert.equal(tar.status, 0);
    mkdirSync(join(root, 'dest'));
    const fs = new RootedFs(root);
    try {
      const x = new RootedExtractor(fs, '/dest', { noOverwriteDirNonDir: true });
      await pipeline(Readable.from([tar.stdout]), new TarReader(x));
    } finally {
      fs.close();
    }
    assert.deepEqual(readdirSync(outside), ['secret']);
    assert.ok(lstatSync(join(root, 'dest', 'evil')).isSymbolicLink());
    // The file went through the link as the root sees it: to <root><outside>/f.
    assert.equal(readFileSync(join(root, outside, 'f'), 'utf8'), 'written\n');
    assert.ok(!existsSync(join(outside, 'f')));
  });

  it('writes file data gathered into batches byte for byte, whatever the pieces', async () => {
    const stage = join(base, 'stage-big');
    mkdirSync(stage);
    // 3 MiB + a bit: several 1 MiB batches and a short tail; then a small file after it.
    const big = Buffer.alloc(3 * 1048576 + 12345);
    for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE(i, i);
    writeFileSync(join(stage, 'big'), big);
    writeFileSync(join(stage, 'small'), 'after\n');
    const tar = spawnSync('tar', ['-C', stage, '-c', '-f', '-', 'big', 'small'], { maxBuffer: 16 << 20 });
    assert.equal(tar.status, 0);
    mkdirSync(join(root, 'batched'));
    // Pieces of 700 bytes: more pieces per batch than one writev takes (IOV_MAX).
    const pieces: Buffer[] = [];
    for (let i = 0; i < tar.stdout.length; i += 700) pieces.push(tar.stdout.subarray(i, i + 700));
    const fs = new RootedFs(root);
    try {
      await pipeline(Readable.from(pieces), new TarReader(new RootedExtractor(fs, '/batched', { noOverwriteDirNonDir: true })));
    } finally {
      fs.close();
    }
    assert.ok(readFileSync(join(root, 'batched', 'big')).equals(big));
    assert.equal(readFileSync(join(root, 'batched', 'small'), 'utf8'), 'after\n');
  });
});

describe('tar reader', () => {
  it('reads GNU long names, PAX records, links and data across chunk boundaries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-tar-'));
    try {
      const long = 'd'.repeat(120);
      mkdirSync(join(dir, long), { recursive: true });
      writeFileSync(join(dir, long, 'file'), Buffer.alloc(70_000, 7));
      symlinkSync('file', join(dir, long, 'ln'));
      const seen: { e: TarEntry; bytes: number }[] = [];
      const sink = {
        begin: (e: TarEntry) => void seen.push({ e, bytes: 0 }),
        data: (bs: Buffer[]) => void (seen[seen.length - 1]!.bytes += bs.reduce((n, b) => n + b.length, 0)),
        end: () => {},
        finish: () => {},
      };
      for (const format of ['gnu', 'pax']) {
        seen.length = 0;
        const tar = spawnSync('tar', ['-C', dir, '-c', '-f', '-', `--format=${format}`, long]);
        // Fed in odd-sized pieces: headers and data split anywhere.
        const pieces: Buffer[] = [];
        for (let i = 0; i < tar.stdout.length; i += 333) pieces.push(tar.stdout.subarray(i, i + 333));
        await pipeline(Readable.from(pieces), new TarReader(sink));
        const file = seen.find((s) => s.e.name === `${long}/file`);
        assert.ok(file, `${format}: ${seen.map((s) => s.e.name).join(',')}`);
        assert.equal(file.bytes, 70_000);
        assert.equal(seen.find((s) => s.e.name === `${long}/ln`)?.e.linkname, 'file');
      }
      await assert.rejects(pipeline(Readable.from([Buffer.alloc(512, 1)]), new TarReader(sink)), /invalid tar header/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('overlay upper dirs', () => {
  let base: string;
  let upper: string;
  let lower: string;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'arca-overlay-'));
    upper = join(base, 'upper');
    lower = join(base, 'lower');
    mkdirSync(join(lower, 'etc'), { recursive: true });
    mkdirSync(join(lower, 'bin'), { recursive: true });
    mkdirSync(join(lower, 'var', 'old'), { recursive: true });
    writeFileSync(join(lower, 'etc', 'passwd'), 'root\n');
    writeFileSync(join(lower, 'bin', 'ls'), 'ls\n');
    mkdirSync(join(upper, 'etc'), { recursive: true });
    mkdirSync(join(upper, 'bin'), { recursive: true });
    mkdirSync(join(upper, 'var'), { recursive: true });
    writeFileSync(join(upper, 'etc', 'passwd'), 'root\nme\n');
    writeFileSync(join(upper, 'etc', 'hosts'), '');
    writeFileSync(join(upper, 'new'), 'n\n');
    writeFileSync(join(upper, 'var', 'fresh'), 'f\n');
    spawnSync('mknod', [join(upper, 'bin', 'ls'), 'c', '0', '0']);
    spawnSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'var')]);
    spawnSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(upper, 'new')]);
  });

  after(() => rmSync(base, { recursive: true, force: true }));

  it('lists changes as docker diff does, init-layer mount points left out', async () => {
    const changes = await overlayChanges(upper, [lower]);
    assert.deepEqual(
      changes.map((c) => `${'CAD'[c.Kind]} ${c.Path}`),
      ['C /bin', 'D /bin/ls', 'C /etc/passwd', 'A /new', 'D /var', 'A /var/fresh'],
    );
  });

  it('writes a layer tar with whiteouts and opaque markers in image form', async () => {
    const chunks: Buffer[] = [];
    for await (const b of overlayDiffTar(upper, { exclude: INIT_LAYER_PATHS })) chunks.push(b);
    const r = spawnSync('tar', ['-t', '-f', '-'], { input: Buffer.concat(chunks), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['bin/', 'bin/.wh.ls', 'etc/', 'etc/passwd', 'new', 'var/', 'var/.wh..wh..opq', 'var/fresh']);
    // File capabilities travel as PAX xattr records, which GNU tar puts back.
    const out = join(base, 'unpacked');
    mkdirSync(out);
    const x = spawnSync('tar', ['-x', '-f', '-', '-C', out, '--xattrs', '--xattrs-include=*'], { input: Buffer.concat(chunks) });
    assert.equal(x.status, 0, x.stderr?.toString());
    const caps = spawnSync('getfattr', ['-n', 'security.capability', '-e', 'hex', join(out, 'new')], { encoding: 'utf8' });
    assert.match(caps.stdout, /security.capability=0x0100000200200000000000000000000000000000/);
  });
});

describe('tar member headers', () => {
  it('write long names and links and big ids through PAX records GNU tar reads', () => {
    const long = 'n'.repeat(150);
    const parts = [
      ...memberHeader({ name: long, flag: '0', mode: 0o640, uid: 3_000_000, gid: 7, size: 3, mtime: 1_700_000_000 }),
      Buffer.from('abc'),
      Buffer.alloc(509),
      ...memberHeader({ name: 'ln', flag: '2', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, linkname: 't'.repeat(120) }),
      Buffer.alloc(1024),
    ];
    const r = spawnSync('tar', ['-t', '-v', '--numeric-owner', '-f', '-'], { input: Buffer.concat(parts), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [a, b] = r.stdout.trim().split('\n');
    assert.match(a!, new RegExp(`^-rw-r----- 3000000/7 +3 .* ${long}$`));
    assert.match(b!, new RegExp(`ln -> ${'t'.repeat(120)}$`));
  });
});

describe('commit references', () => {
  it('takes a repository and a tag, never a digest', () => {
    assert.equal(commitReference(undefined, undefined), undefined);
    assert.deepEqual(commitReference('me/app', 'v2'), { domain: 'docker.io', path: 'me/app', tag: 'v2' });
    assert.equal(commitReference('localhost:5000/app', undefined)?.tag, 'latest');
    assert.throws(() => commitReference('app@sha256:' + 'a'.repeat(64), undefined), /refusing to create a tag with a digest reference/);
    assert.throws(() => commitReference('app', 'bad tag'), /invalid tag format/);
  });
});
