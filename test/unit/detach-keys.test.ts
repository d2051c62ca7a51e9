import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { DEFAULT_DETACH_KEYS, DetachKeyFilter, parseDetachKeys, relayInput } from '../../src/containers/detach-keys.js';

describe('detach keys: Docker\'s syntax', () => {
  it('parses ctrl-<key>, single characters and DEL; empty means ctrl-p,ctrl-q', () => {
    assert.deepEqual(parseDetachKeys(''), DEFAULT_DETACH_KEYS);
    assert.deepEqual(parseDetachKeys(null), Buffer.from([16, 17]));
    assert.deepEqual(parseDetachKeys('ctrl-p,ctrl-q'), Buffer.from([16, 17]));
    assert.deepEqual(parseDetachKeys('ctrl-a,x'), Buffer.from([1, 0x78]));
    assert.deepEqual(parseDetachKeys('ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,ctrl-z'), Buffer.from([0, 27, 28, 29, 30, 31, 26]));
    assert.deepEqual(parseDetachKeys('a,B,9,DEL'), Buffer.from([0x61, 0x42, 0x39, 127]));
    assert.deepEqual(parseDetachKeys(','), undefined, 'an empty key between commas');
  });

  it('rejects what moby rejects', () => {
    for (const bad of ['ctrl-A', 'ctrl-1', 'ctrl-', 'ctrlp', 'ab', 'ctrl-p,', 'del', 'é']) assert.equal(parseDetachKeys(bad), undefined, bad);
  });
});

describe('detach keys: the input filter', () => {
  const run = (keys: Buffer, chunks: string[]): { out: string; detached: boolean } => {
    const f = new DetachKeyFilter(keys);
    let out = '';
    for (const c of chunks) out += f.push(Buffer.from(c, 'latin1')).toString('latin1');
    return { out, detached: f.detached };
  };
  const PQ = DEFAULT_DETACH_KEYS;

  it('detaches on the sequence, in one chunk or split, and passes what came before it', () => {
    assert.deepEqual(run(PQ, ['ls\n\x10\x11']), { out: 'ls\n', detached: true });
    assert.deepEqual(run(PQ, ['ab\x10', '\x11']), { out: 'ab', detached: true });
    assert.deepEqual(run(PQ, ['\x10', '', '\x11', 'after']), { out: '', detached: true });
    // Nothing after the sequence goes on, even in the same chunk.
    assert.deepEqual(run(PQ, ['x\x10\x11rm -rf /\n']), { out: 'x', detached: true });
  });

  it('holds a partial prefix back and releases it when the sequence breaks', () => {
    const f = new DetachKeyFilter(PQ);
    assert.equal(f.push(Buffer.from('a\x10')).toString('latin1'), 'a');
    assert.equal(f.push(Buffer.from('b')).toString('latin1'), '\x10b');
    assert.equal(f.detached, false);
    // A repeated first key: the earlier one is released, the later one may still start it.
    assert.deepEqual(run(PQ, ['\x10', '\x10', '\x11']), { out: '\x10', detached: true });
    // Held at the end of input: flushed as ordinary input.
    const g = new DetachKeyFilter(PQ);
    assert.equal(g.push(Buffer.from('z\x10')).toString('latin1'), 'z');
    assert.equal(g.flush().toString('latin1'), '\x10');
  });

  it('handles sequences whose keys repeat (a,a,b)', () => {
    const k = Buffer.from('aab');
    assert.deepEqual(run(k, ['aaab']), { out: 'a', detached: true });
    assert.deepEqual(run(k, ['aa', 'ac']), { out: 'aaac', detached: false });
    assert.deepEqual(run(k, ['abaab']), { out: 'ab', detached: true });
  });

  it('relays a socket\'s input and ends the sink once, on detach or at the end', async () => {
    const sock = new PassThrough();
    const got: string[] = [];
    let ended = 0;
    let detached = 0;
    relayInput(sock, Buffer.from('first '), PQ, { write: (b) => got.push(b.toString()), end: () => ended++ }, () => detached++);
    sock.write('echo hi\x10');
    sock.write('\x11ignored');
    sock.end();
    await new Promise((r) => setImmediate(r));
    assert.equal(got.join(''), 'first echo hi');
    assert.equal(ended, 1);
    assert.equal(detached, 1);

    const plain = new PassThrough();
    const out: string[] = [];
    let closed = 0;
    relayInput(plain, Buffer.alloc(0), undefined, { write: (b) => out.push(b.toString()), end: () => closed++ }, () => assert.fail('no keys, no detach'));
    plain.end('\x10\x11');
    await new Promise((r) => setImmediate(r));
    assert.equal(out.join(''), '\x10\x11');
    assert.equal(closed, 1);
  });
});
