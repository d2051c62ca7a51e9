import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { goQuote, validateVolumeName, volumeNameProblem } from '../../src/volumes/volume-name.js';
import { InvalidParameter } from '../../src/errors.js';

describe('volume names', () => {
  it('accepts what Docker accepts', () => {
    for (const name of ['ab', 'a1', '0x', 'my_vol', 'my.vol-2', 'A.b_C-d', 'x'.repeat(200)]) {
      assert.equal(volumeNameProblem(name), undefined, name);
    }
  });

  it('says a one-byte name is too short', () => {
    assert.equal(
      volumeNameProblem('.'),
      'volume name is too short, names should be at least two alphanumeric characters',
    );
    assert.match(volumeNameProblem('a')!, /too short/);
  });

  it('rejects bad characters with the allowed set quoted as Go does', () => {
    assert.equal(
      volumeNameProblem('hello world'),
      '"hello world" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
    );
    for (const name of ['_a', '.a', '-a', 'a/b', '../x', 'a:b', 'a\nb', 'é', 'aé', '']) {
      assert.match(volumeNameProblem(name) ?? '', /includes invalid characters/, JSON.stringify(name));
    }
  });

  it('wraps the problem in create <name>: as an InvalidParameter', () => {
    assert.throws(() => validateVolumeName('~'), (e: unknown) => {
      assert.ok(e instanceof InvalidParameter);
      assert.equal(e.message, 'create ~: volume name is too short, names should be at least two alphanumeric characters');
      return true;
    });
  });

  it('quotes like Go %q', () => {
    assert.equal(goQuote('a b'), '"a b"');
    assert.equal(goQuote('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(goQuote('a\nb\tc\x01'), '"a\\nb\\tc\\x01"');
    assert.equal(goQuote('é✓'), '"é✓"');
  });
});
