import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonStreamSplitter } from '../../src/ovsdb/json-stream-splitter.js';
import { atomText, fromMap, fromSet, fromUuid, map, namedUuid, set, uuid } from '../../src/ovsdb/ovsdb-values.js';

const MESSAGES = [
  { id: 1, result: [{ rows: [{ name: 'a}b{c', note: 'say "hi" \\ [not] {an} object', uni: 'ünï €😀' }] }], error: null },
  { method: 'update', params: ['m1', { T: { u: { new: { x: ['set', []] } } } }], id: null },
  { id: 'echo', method: 'echo', params: [] },
  [1, 2, [3, { a: '\\' }]],
];

describe('JsonStreamSplitter', () => {
  const stream = Buffer.from(MESSAGES.map((m) => JSON.stringify(m)).join(''), 'utf8');

  it('cuts concatenated messages read in one chunk', () => {
    const out = new JsonStreamSplitter().push(stream);
    assert.deepEqual(out.map((t) => JSON.parse(t)), MESSAGES);
  });

  it('gives the same messages wherever the stream is cut, even inside a UTF-8 character', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const s = new JsonStreamSplitter();
      const out = [...s.push(stream.subarray(0, cut)), ...s.push(stream.subarray(cut))];
      assert.deepEqual(out.map((t) => JSON.parse(t)), MESSAGES, `cut at ${cut}`);
    }
  });

  it('takes the stream one byte at a time, with whitespace between messages', () => {
    const s = new JsonStreamSplitter();
    const spaced = Buffer.from(MESSAGES.map((m) => JSON.stringify(m, null, 1)).join('\n \r\t'), 'utf8');
    const out: string[] = [];
    for (let i = 0; i < spaced.length; i++) out.push(...s.push(spaced.subarray(i, i + 1)));
    assert.deepEqual(out.map((t) => JSON.parse(t)), MESSAGES);
  });

  it('rejects bytes that cannot start a message, and messages over the limit', () => {
    assert.throws(() => new JsonStreamSplitter().push(Buffer.from('{"a":1} x')), SyntaxError);
    assert.throws(() => new JsonStreamSplitter().push(Buffer.from('}')), SyntaxError);
    const s = new JsonStreamSplitter(64);
    s.push(Buffer.from('{"a":"' + 'x'.repeat(40)));
    assert.throws(() => s.push(Buffer.from('x'.repeat(40))), RangeError);
  });
});

describe('ovsdb values', () => {
  it('builds the wire forms', () => {
    assert.deepEqual(uuid('u1'), ['uuid', 'u1']);
    assert.deepEqual(namedUuid('n'), ['named-uuid', 'n']);
    assert.deepEqual(set(['a', 1]), ['set', ['a', 1]]);
    assert.deepEqual(set([]), ['set', []]);
    assert.deepEqual(map({ a: '1', b: '2' }), ['map', [['a', '1'], ['b', '2']]]);
  });

  it('decodes sets in both forms, maps and references', () => {
    assert.deepEqual(fromSet(['set', ['a', 'b']]), ['a', 'b']);
    assert.deepEqual(fromSet('a'), ['a']);
    assert.deepEqual(fromSet(['uuid', 'u1']), [['uuid', 'u1']]);
    assert.deepEqual(fromSet(undefined), []);
    assert.throws(() => fromSet(['map', []]), TypeError);
    assert.deepEqual(fromMap(['map', [['k', 'v'], ['n', 3], ['r', ['uuid', 'u2']]]]), { k: 'v', n: '3', r: 'u2' });
    assert.deepEqual(fromMap(undefined), {});
    assert.throws(() => fromMap('x'), TypeError);
    assert.equal(fromUuid(['uuid', 'u3']), 'u3');
    assert.equal(fromUuid(['set', [['uuid', 'u4']]]), 'u4');
    assert.equal(fromUuid(['set', []]), undefined);
    assert.throws(() => fromUuid(['set', [['uuid', 'a'], ['uuid', 'b']]]), TypeError);
    assert.equal(atomText(true), 'true');
  });
});
