import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleTar, recordTarSplit } from '../../src/images/tar-split.js';

function tar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('tar-split', () => {
  it('rebuilds a GNU tar byte for byte from its unpacked folder', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'arca-tarsplit-'));
    try {
      const src = join(tmp, 'src');
      mkdirSync(join(src, 'dir', 'x'.repeat(120)), { recursive: true });
      writeFileSync(join(src, 'dir', 'a.txt'), 'hello\n');
      writeFileSync(join(src, 'dir', 'x'.repeat(120), 'deep'), Buffer.alloc(70000, 7));
      writeFileSync(join(src, 'empty'), '');
      symlinkSync('dir/a.txt', join(src, 'link'));
      const tarPath = join(tmp, 'l.tar');
      tar(['-cf', tarPath, '-C', src, '.']);
      const rec = await recordTarSplit(tarPath);
      assert.ok(rec.ok);
      const out = join(tmp, 'out');
      mkdirSync(out);
      tar(['-xf', tarPath, '-C', out]);
      const want = readFileSync(tarPath);
      const diffId = `sha256:${createHash('sha256').update(want).digest('hex')}`;
      assert.equal(rec.split.size, want.length);
      const got = await collect(assembleTar(rec.split, out, diffId));
      assert.ok(got.equals(want));
      writeFileSync(join(out, 'dir', 'a.txt'), 'HELLO\n');
      await assert.rejects(collect(assembleTar(rec.split, out, diffId)), /does not match/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses files below a symlink of the same tar and paths given twice', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'arca-tarsplit-'));
    try {
      const src = join(tmp, 'src');
      mkdirSync(join(src, 'real'), { recursive: true });
      writeFileSync(join(src, 'real', 'f'), 'data');
      symlinkSync('/etc', join(src, 'ln'));
      const t1 = join(tmp, '1.tar');
      // ln (a symlink), then a file "ln/f" through it: rebuilding would read the host's /etc.
      tar(['-cf', t1, '-C', src, 'ln', '--transform=s,^real/f$,ln/f,', 'real/f']);
      const r1 = await recordTarSplit(t1);
      assert.equal(r1.ok, false);
      const t2 = join(tmp, '2.tar');
      tar(['-cf', t2, '-C', src, 'real/f', 'real/f']);
      const r2 = await recordTarSplit(t2);
      assert.equal(r2.ok, false);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
