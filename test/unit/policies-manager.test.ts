import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { InvalidParameter, NotFound } from '../../src/errors.js';
import { parsePolicies } from '../../src/network/policies/policy-parse.js';
import { PolicyManager } from '../../src/network/policies/policy-manager.js';
import type { PolicyDoc } from '../../src/network/policies/policy-types.js';

function manager(): { m: PolicyManager; db: Database.Database; changes: () => number } {
  const db = new Database(':memory:');
  const m = new PolicyManager(db);
  let n = 0;
  m.onChange(() => {
    n++;
  });
  return { m, db, changes: () => n };
}

describe('policy manager', () => {
  it('creates, replaces (keeping created), lists by name, gets, removes', async () => {
    const { m, changes } = manager();
    assert.equal(m.put({ name: 'b', network: 'n', ingress: [] }), 'created');
    assert.equal(m.put({ name: 'a', network: 'n' }), 'created');
    const before = m.get('b');
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(m.put({ name: 'b', network: 'n', egress: [] }), 'replaced');
    const after = m.get('b');
    assert.equal(after.created, before.created);
    assert.notEqual(after.updated, before.updated);
    assert.deepEqual(after.egress, []);
    assert.equal(after.ingress, undefined);
    assert.match(after.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    assert.deepEqual(m.list().map((p) => p.name), ['a', 'b']);
    assert.deepEqual(m.docs(), [{ name: 'a', network: 'n' }, { name: 'b', network: 'n', egress: [] }]);
    m.remove('a');
    assert.deepEqual(m.docs().map((d) => d.name), ['b']);
    await m.settled();
    assert.equal(changes(), 4);
  });

  it('NotFound for an unknown name, and no change event', async () => {
    const { m, changes } = manager();
    assert.throws(() => m.get('x'), (e: unknown) => e instanceof NotFound && (e as Error).message === 'policy "x" not found');
    assert.throws(() => m.remove('x'), NotFound);
    await m.settled();
    assert.equal(changes(), 0);
  });

  it('applies a file whole or not at all: one bad document applies nothing', async () => {
    const { m, changes } = manager();
    m.put({ name: 'keep', network: 'n', ingress: [] });
    const good = parsePolicies('- {name: keep, network: m}\n- {name: new, network: n}\n');
    const bad = [...good, { name: 'broken', network: 'n', ingress: [{ ports: [{ port: '9-1' }] }] } as unknown as PolicyDoc];
    assert.throws(() => m.applyAll(bad), (e: unknown) => e instanceof InvalidParameter && /^policy "broken": ingress\[0\]\.ports\[0\]\.port: /.test((e as Error).message));
    assert.deepEqual(m.docs(), [{ name: 'keep', network: 'n', ingress: [] }]);
    assert.throws(() => m.applyAll([good[1]!, good[1]!]), /policy "new" is given twice/);
    assert.deepEqual(m.docs().map((d) => d.name), ['keep']);
    assert.deepEqual(m.applyAll(good), [
      { name: 'keep', result: 'replaced' },
      { name: 'new', result: 'created' },
    ]);
    assert.deepEqual(m.docs(), [{ name: 'keep', network: 'm' }, { name: 'new', network: 'n' }]);
    await m.settled();
    assert.equal(changes(), 2);
  });

  it('a failing write rolls the whole transaction back', () => {
    const { m, db } = manager();
    m.put({ name: 'a', network: 'n' });
    // Make the second insert fail inside the transaction.
    db.exec("CREATE TRIGGER no_b BEFORE INSERT ON policies WHEN NEW.name = 'b' BEGIN SELECT RAISE(ABORT, 'refused'); END;");
    assert.throws(() => m.applyAll([{ name: 'a', network: 'changed' }, { name: 'b', network: 'n' }]), /refused/);
    assert.deepEqual(m.docs(), [{ name: 'a', network: 'n' }]);
  });

  it('listeners run in order of changes, their failures do not undo the change', async () => {
    const db = new Database(':memory:');
    const m = new PolicyManager(db);
    const seen: string[] = [];
    m.onChange(async () => {
      await new Promise((r) => setTimeout(r, 5));
      seen.push(m.docs().map((d) => d.network).join(','));
      throw new Error('enforcer down');
    });
    m.put({ name: 'a', network: 'one' });
    m.put({ name: 'a', network: 'two' });
    await m.settled();
    assert.deepEqual(seen, ['two', 'two']);
    assert.equal(m.get('a').network, 'two');
  });

  it('keeps its rows across managers on the same database (the table is created once)', () => {
    const db = new Database(':memory:');
    new PolicyManager(db).put({ name: 'a', network: 'n' });
    assert.deepEqual(new PolicyManager(db).docs(), [{ name: 'a', network: 'n' }]);
  });
});
