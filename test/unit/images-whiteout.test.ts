import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertWhiteouts } from '../../src/images/whiteout-converter.js';

describe('whiteout conversion', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'arca-whiteout-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('turns .wh. files into 0:0 char devices and .wh..wh..opq into the opaque xattr', async () => {
    mkdirSync(join(dir, 'etc', 'sub'), { recursive: true });
    mkdirSync(join(dir, 'opaque'));
    writeFileSync(join(dir, 'etc', '.wh.passwd'), '');
    writeFileSync(join(dir, 'etc', 'sub', '.wh.gone-dir'), '');
    writeFileSync(join(dir, 'opaque', '.wh..wh..opq'), '');
    writeFileSync(join(dir, 'opaque', 'kept'), 'abcd');
    writeFileSync(join(dir, 'file'), '0123456789');
    linkSync(join(dir, 'file'), join(dir, 'hardlink'));

    const scan = await convertWhiteouts(dir);
    assert.equal(scan.whiteouts, 2);
    assert.equal(scan.opaqueDirs, 1);
    assert.equal(scan.size, 14, 'hard links count once');

    for (const p of [join(dir, 'etc', 'passwd'), join(dir, 'etc', 'sub', 'gone-dir')]) {
      const st = lstatSync(p);
      assert.ok(st.isCharacterDevice(), `${p} is a char device`);
      assert.equal(st.rdev, 0);
    }
    assert.ok(!existsSync(join(dir, 'etc', '.wh.passwd')));
    assert.ok(!existsSync(join(dir, 'opaque', '.wh..wh..opq')));
    assert.ok(existsSync(join(dir, 'opaque', 'kept')));
    const xattr = execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', join(dir, 'opaque')], { encoding: 'utf8' });
    assert.equal(xattr, 'y');
  });
});
