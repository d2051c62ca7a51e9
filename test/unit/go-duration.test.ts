import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { goDurationMs } from '../../src/go-duration.js';

describe('Go durations', () => {
  it('reads what time.ParseDuration reads, in milliseconds', () => {
    assert.equal(goDurationMs('90m'), 5_400_000);
    assert.equal(goDurationMs('1h30m'), 5_400_000);
    assert.equal(goDurationMs('1.5h'), 5_400_000);
    assert.equal(goDurationMs('250ms'), 250);
    assert.equal(goDurationMs('2us'), 0.002);
    assert.equal(goDurationMs('2µs'), 0.002);
    assert.equal(goDurationMs('1s500ms'), 1500);
  });

  it('is not a duration without a unit, or with a broken number', () => {
    for (const v of ['1700000000', '0', '1.2.3h', 'h', '', '2024-01-01T00:00:00Z', '10 m']) assert.equal(goDurationMs(v), undefined, v);
  });
});
