/** The pure parts of the bench's wireguard section: the scale run's sample, its reachability probe's output, the data path's carrier counters. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { carrierCounters } from '../../bench/data-path.js';
import { parseReach, sampleIndices } from '../../bench/wireguard-bench.js';

describe('bench wireguard: sampleIndices', () => {
  it('draws k distinct indices in range', () => {
    for (let t = 0; t < 50; t++) {
      const s = sampleIndices(100, 20);
      assert.equal(s.length, 20);
      assert.equal(new Set(s).size, 20);
      assert.ok(s.every((i) => Number.isInteger(i) && i >= 0 && i < 100));
    }
  });

  it('takes all of them when k ≥ n', () => {
    assert.deepEqual(sampleIndices(5, 20).sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(sampleIndices(0, 20), []);
  });

  it('follows the random source (a Fisher–Yates prefix)', () => {
    // rand always 0: no swaps; rand always the top: each position swaps with the last one.
    assert.deepEqual(sampleIndices(5, 3, () => 0), [0, 1, 2]);
    assert.deepEqual(sampleIndices(5, 2, (below) => below - 1), [4, 0]);
  });
});

describe('bench wireguard: parseReach', () => {
  it('sorts the probe lines by outcome and ignores anything else', () => {
    const out = 'ok 198.19.100.2\nretry 198.19.100.3\nfail 198.19.100.4\nnoise\nok 198.19.100.5\n';
    assert.deepEqual(parseReach(out), { ok: ['198.19.100.2', '198.19.100.5'], retried: ['198.19.100.3'], failed: ['198.19.100.4'] });
    assert.deepEqual(parseReach(''), { ok: [], retried: [], failed: [] });
  });
});

describe('bench data path: carrierCounters', () => {
  it('reads a live process and gives zeros for a gone one', () => {
    const t0 = Date.now();
    while (Date.now() - t0 < 30) Math.sqrt(t0); // some CPU time of our own
    const me = carrierCounters(process.pid);
    assert.ok(me.cpuS > 0, JSON.stringify(me));
    assert.ok(Number.isInteger(me.rcvbufErrors) && me.rcvbufErrors >= 0);
    assert.deepEqual(carrierCounters(2 ** 22 + 1), { cpuS: 0, rcvbufErrors: 0 });
  });
});
