import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonInteger, stringifyJson } from '../../src/json-integer.js';

describe('json-integer', () => {
  it('writes integers above 2^53 exactly, as bare JSON numbers', () => {
    const text = stringifyJson({ a: new JsonInteger(9223372036854771712n), b: [new JsonInteger(18446744073709551615n), 1], c: 'x' });
    assert.equal(text, '{"a":9223372036854771712,"b":[18446744073709551615,1],"c":"x"}');
    assert.equal(stringifyJson({ t: new JsonInteger(-9007199254740993n) }), '{"t":-9007199254740993}');
  });

  it('keeps safe values plain numbers and leaves text without JsonIntegers untouched', () => {
    assert.equal(JsonInteger.parse('4096'), 4096);
    assert.deepEqual(JsonInteger.parse('9223372036854771712'), new JsonInteger(9223372036854771712n));
    const plain = { s: '\u0000int:5', n: 5 };
    assert.equal(stringifyJson(plain), JSON.stringify(plain));
  });

  it('a client string that looks like a marker stays a string', () => {
    const text = stringifyJson({ label: '\u0000int:123', n: new JsonInteger(2n ** 60n) });
    assert.ok(text.endsWith(`"n":${2n ** 60n}}`), text);
    assert.equal((JSON.parse(text) as { label: string }).label, '\u0000int:123');
  });
});
