import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { OvsdbClient, OvsdbConnectionError, OvsdbError } from '../../src/ovsdb/ovsdb-client.js';
import { OvsdbSession } from '../../src/ovsdb/ovsdb-session.js';
import {
  fromMap,
  fromSet,
  fromUuid,
  map,
  namedUuid,
  set,
  uuid,
  type Condition,
  type OvsdbOp,
  type TableUpdates,
} from '../../src/ovsdb/ovsdb-values.js';
import { OvsdbServerFixture, ovsdbServerMissing } from './ovsdb-server-fixture.js';

const NB = 'OVN_Northbound';
const OVS = 'Open_vSwitch';
const missing = ovsdbServerMissing();

function rejectsWith(err: unknown, check: (e: OvsdbError) => boolean): boolean {
  return err instanceof OvsdbError && check(err);
}

describe('ovsdb client against a real ovsdb-server', { skip: missing }, () => {
  let server: OvsdbServerFixture;
  let c: OvsdbClient;

  before(async () => {
    server = new OvsdbServerFixture();
    await server.start();
    c = await OvsdbClient.connect(server.socket);
  });
  after(async () => {
    c?.close();
    await server?.destroy();
  });

  it('lists the databases and answers echo', async () => {
    const dbs = await c.listDbs();
    assert.ok(dbs.includes(NB) && dbs.includes(OVS), dbs.join(','));
    await c.echo();
  });

  it('inserts, selects, updates, mutates and deletes a row', async () => {
    const [ins] = await c.transact(NB, [
      { op: 'insert', table: 'Logical_Switch', row: { name: 'crud', external_ids: map({ 'arca-id': 'n1', owner: 'arca' }) } },
    ]);
    const id = ins!.uuid![1];
    assert.match(id, /^[0-9a-f-]{36}$/);
    const where: Condition[] = [['_uuid', '==', uuid(id)]];

    const [sel] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where, columns: ['name', 'external_ids', 'ports'] }]);
    assert.equal(sel!.rows!.length, 1);
    const row = sel!.rows![0]!;
    assert.equal(row.name, 'crud');
    assert.deepEqual(fromMap(row.external_ids), { 'arca-id': 'n1', owner: 'arca' });
    assert.deepEqual(fromSet(row.ports), []);

    const [upd] = await c.transact(NB, [{ op: 'update', table: 'Logical_Switch', where, row: { other_config: map({ mtu: '1400' }) } }]);
    assert.equal(upd!.count, 1);

    const [mut] = await c.transact(NB, [
      {
        op: 'mutate',
        table: 'Logical_Switch',
        where,
        mutations: [
          ['external_ids', 'delete', set(['owner'])],
          ['external_ids', 'insert', map({ extra: 'yes' })],
        ],
      },
    ]);
    assert.equal(mut!.count, 1);
    const [after1] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where, columns: ['external_ids', 'other_config'] }]);
    assert.deepEqual(fromMap(after1!.rows![0]!.external_ids), { 'arca-id': 'n1', extra: 'yes' });
    assert.deepEqual(fromMap(after1!.rows![0]!.other_config), { mtu: '1400' });

    const [del] = await c.transact(NB, [{ op: 'delete', table: 'Logical_Switch', where }]);
    assert.equal(del!.count, 1);
    const [gone] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where }]);
    assert.deepEqual(gone!.rows, []);
  });

  it('links rows inserted in one transaction through named-uuid', async () => {
    const res = await c.transact(NB, [
      { op: 'insert', table: 'Logical_Switch_Port', 'uuid-name': 'p1', row: { name: 'named-p1', addresses: set(['02:00:00:00:00:01 10.0.0.2']) } },
      { op: 'insert', table: 'Logical_Switch_Port', 'uuid-name': 'p2', row: { name: 'named-p2' } },
      { op: 'insert', table: 'Logical_Switch', row: { name: 'named', ports: set([namedUuid('p1'), namedUuid('p2')]) } },
      { op: 'comment', comment: 'arca: unit test' },
    ]);
    assert.equal(res.length, 4);
    const [p1, p2, sw] = res.map((r) => r.uuid?.[1]);
    const [sel] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where: [['_uuid', '==', uuid(sw!)]], columns: ['ports'] }]);
    const ports = fromSet(sel!.rows![0]!.ports).map((a) => (a as [string, string])[1]).sort();
    assert.deepEqual(ports, [p1, p2].sort());

    // A one-element set comes back as the bare atom: the decoders read both forms.
    await c.transact(NB, [{ op: 'mutate', table: 'Logical_Switch', where: [['_uuid', '==', uuid(sw!)]], mutations: [['ports', 'delete', set([uuid(p2!)])]] }]);
    const [one] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where: [['name', '==', 'named']], columns: ['ports'] }]);
    assert.deepEqual(one!.rows![0]!.ports, uuid(p1!));
    assert.equal(fromUuid(one!.rows![0]!.ports), p1);
    const [lsp] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch_Port', where: [['name', '==', 'named-p1']], columns: ['addresses'] }]);
    assert.deepEqual(fromSet(lsp!.rows![0]!.addresses), ['02:00:00:00:00:01 10.0.0.2']);
    // p2, no longer referenced by a root row, was garbage collected.
    const [p2sel] = await c.transact(NB, [{ op: 'select', table: 'Logical_Switch_Port', where: [['name', '==', 'named-p2']] }]);
    assert.deepEqual(p2sel!.rows, []);
  });

  it('rejects a failing operation with OvsdbError naming its index, committing nothing', async () => {
    await assert.rejects(
      c.transact(OVS, [
        { op: 'insert', table: 'Bridge', row: { name: 'not-committed' } },
        { op: 'insert', table: 'Interface', row: { name: 'x', ofport_request: 0 } },
      ]),
      (e) => rejectsWith(e, (err) => err.error === 'constraint violation' && err.opIndex === 1 && /valid range/.test(err.details ?? '')),
    );
    const [sel] = await c.transact(OVS, [{ op: 'select', table: 'Bridge', where: [['name', '==', 'not-committed']] }]);
    assert.deepEqual(sel!.rows, []);
  });

  it('rejects a failed commit (the trailing error) with OvsdbError without an index', async () => {
    // Address_Set names are a unique index: the clash is found at commit, after every op succeeded.
    await assert.rejects(
      c.transact(NB, [
        { op: 'insert', table: 'Address_Set', row: { name: 'dup' } },
        { op: 'insert', table: 'Address_Set', row: { name: 'dup' } },
      ]),
      (e) => rejectsWith(e, (err) => err.error === 'constraint violation' && err.opIndex === undefined),
    );
    await assert.rejects(
      c.transact(NB, [{ op: 'insert', table: 'Logical_Switch', row: { ports: set([namedUuid('nowhere')]) } }]),
      (e) => rejectsWith(e, (err) => err.error === 'referential integrity violation' && err.opIndex === undefined),
    );
  });

  it('rejects a request on an unknown database with OvsdbError', async () => {
    await assert.rejects(c.transact('Nope', [{ op: 'select', table: 'X', where: [] }]), (e) => rejectsWith(e, (err) => err.error === 'unknown database'));
  });

  it('blocks on a wait until another client sets the row, and times a wait out on the server', async () => {
    await c.transact(NB, [
      { op: 'insert', table: 'Logical_Switch_Port', 'uuid-name': 'p', row: { name: 'wait-p' } },
      { op: 'insert', table: 'Logical_Switch', row: { name: 'wait', ports: namedUuid('p') } },
    ]);
    const waitUp: OvsdbOp = {
      op: 'wait',
      table: 'Logical_Switch_Port',
      where: [['name', '==', 'wait-p']],
      columns: ['up'],
      until: '==',
      rows: [{ up: true }],
      timeout: 5000,
    };
    await assert.rejects(c.transact(NB, [{ ...waitUp, timeout: 150 } as OvsdbOp]), (e) =>
      rejectsWith(e, (err) => err.error === 'timed out' && err.opIndex === 0),
    );

    const other = await OvsdbClient.connect(server.socket);
    try {
      const started = Date.now();
      const waiting = c.transact(NB, [waitUp, { op: 'select', table: 'Logical_Switch_Port', where: [['name', '==', 'wait-p']], columns: ['up'] }]);
      let settled = false;
      void waiting.finally(() => (settled = true)).catch(() => {});
      await sleep(150);
      assert.equal(settled, false, 'the wait returned before the row changed');
      // A blocked wait does not hold up later calls on the same connection (the driver shares one).
      await c.transact(NB, [{ op: 'select', table: 'Logical_Switch', where: [['name', '==', 'wait']] }]);
      assert.equal(settled, false);
      await other.transact(NB, [{ op: 'update', table: 'Logical_Switch_Port', where: [['name', '==', 'wait-p']], row: { up: true } }]);
      const res = await waiting;
      assert.ok(Date.now() - started < 4000);
      assert.equal(res[1]!.rows![0]!.up, true);
    } finally {
      other.close();
    }
  });

  it('delivers a monitor initial state and then each change', async () => {
    await c.transact(NB, [{ op: 'insert', table: 'Logical_Router', row: { name: 'mon-a' } }]);
    const updates: TableUpdates[] = [];
    let wake: (() => void) | undefined;
    const mon = await c.monitor(NB, { Logical_Router: { columns: ['name', 'options'] } }, (u) => {
      updates.push(u);
      wake?.();
    });
    const next = async (n: number): Promise<void> => {
      while (updates.length < n) await new Promise<void>((r) => (wake = r));
    };
    const initial = Object.values(mon.initial.Logical_Router ?? {});
    assert.deepEqual(
      initial.map((r) => r.new?.name),
      ['mon-a'],
    );
    assert.equal(initial[0]!.old, undefined);

    const [ins] = await c.transact(NB, [{ op: 'insert', table: 'Logical_Router', row: { name: 'mon-b' } }]);
    const id = ins!.uuid![1];
    await next(1);
    assert.equal(updates[0]!.Logical_Router![id]!.new!.name, 'mon-b');
    assert.equal(updates[0]!.Logical_Router![id]!.old, undefined);

    await c.transact(NB, [{ op: 'update', table: 'Logical_Router', where: [['_uuid', '==', uuid(id)]], row: { options: map({ k: 'v' }) } }]);
    await next(2);
    const mod = updates[1]!.Logical_Router![id]!;
    assert.deepEqual(fromMap(mod.new!.options), { k: 'v' });
    assert.deepEqual(fromMap(mod.old!.options), {}, 'old holds the previous value of changed columns');

    await c.transact(NB, [{ op: 'delete', table: 'Logical_Router', where: [['_uuid', '==', uuid(id)]] }]);
    await next(3);
    assert.equal(updates[2]!.Logical_Router![id]!.new, undefined);
    assert.equal(updates[2]!.Logical_Router![id]!.old!.name, 'mon-b');

    await mon.cancel();
    await c.transact(NB, [{ op: 'insert', table: 'Logical_Router', row: { name: 'mon-c' } }]);
    await c.echo();
    assert.equal(updates.length, 3, 'no update after cancel');
  });

  it('keeps delivering to other monitors when one callback throws', async () => {
    const seen: string[] = [];
    const bad = await c.monitor(NB, { Port_Group: { columns: ['name'] } }, () => {
      throw new Error('subscriber bug (expected in this test)');
    });
    const good = await c.monitor(NB, { Port_Group: { columns: ['name'] } }, (u) => {
      for (const r of Object.values(u.Port_Group ?? {})) if (r.new) seen.push(String(r.new.name));
    });
    await c.transact(NB, [{ op: 'insert', table: 'Port_Group', row: { name: 'm1' } }]);
    for (let i = 0; i < 100 && seen.length === 0; i++) await sleep(20);
    assert.deepEqual(seen, ['m1']);
    assert.equal(c.closed, false);
    await bad.cancel();
    await good.cancel();
  });

  it("answers the server's echo keepalives, so an idle connection stays up", async () => {
    // A Manager row opens a second socket with a 1 s inactivity probe (the shortest the server allows).
    await c.transact(OVS, [
      { op: 'insert', table: 'Manager', 'uuid-name': 'm', row: { target: `punix:${server.managerSocket}`, inactivity_probe: 1000 } },
      { op: 'insert', table: 'Open_vSwitch', row: { manager_options: namedUuid('m') } },
    ]);
    let probed: OvsdbClient | undefined;
    for (let i = 0; i < 100 && !probed; i++) {
      probed = await OvsdbClient.connect(server.managerSocket).catch(() => undefined);
      if (!probed) await sleep(50);
    }
    assert.ok(probed, 'the manager socket never opened');
    // A raw peer that never answers sees the echo request, then is dropped.
    const raw = connect(server.managerSocket);
    let heard = '';
    raw.on('data', (d) => (heard += d.toString()));
    const rawClosed = once(raw, 'close');
    try {
      await sleep(2600);
      assert.equal(probed.closed, false, 'our client was dropped while idle');
      await probed.echo();
      const [sel] = await probed.transact(OVS, [{ op: 'select', table: 'Manager', where: [], columns: ['target'] }]);
      assert.equal(sel!.rows!.length, 1);
      await Promise.race([rawClosed, sleep(2000).then(() => assert.fail('the silent peer was not dropped'))]);
      assert.match(heard, /"method":"echo"/);
    } finally {
      raw.destroy();
      probed.close();
    }
  });

  it('frames a large reply, and matches overlapping calls by id', async () => {
    const ops: OvsdbOp[] = [];
    for (let i = 0; i < 2000; i++) ops.push({ op: 'insert', table: 'Address_Set', row: { name: `big-${i}`, addresses: set([`10.9.${i >> 8}.${i & 255}`]), external_ids: map({ i: String(i), pad: 'x'.repeat(200) }) } });
    const res = await c.transact(NB, ops);
    assert.equal(res.length, 2000);
    const [sel] = await c.transact(NB, [{ op: 'select', table: 'Address_Set', where: [['name', '!=', 'dup']] }]);
    assert.equal(sel!.rows!.length, 2000);
    assert.equal(new Set(sel!.rows!.map((r) => r.name)).size, 2000);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => c.transact(NB, [{ op: 'select', table: 'Address_Set', where: [['name', '==', `big-${i * 7}`]], columns: ['external_ids'] }])),
    );
    answers.forEach((a, i) => assert.equal(fromMap(a[0]!.rows![0]!.external_ids).i, String(i * 7)));
    const mon = await c.monitor(NB, { Address_Set: { columns: ['name'] } }, () => {});
    assert.equal(Object.keys(mon.initial.Address_Set!).length, 2000);
    await mon.cancel();
  });

  it('times a call out on the client, and rejects pending calls on close', async () => {
    const forever: OvsdbOp = { op: 'wait', table: 'Logical_Switch', where: [['name', '==', 'never']], columns: ['name'], until: '==', rows: [{ name: 'never' }] };
    const other = await OvsdbClient.connect(server.socket);
    await assert.rejects(other.transact(NB, [forever], { timeoutMs: 200 }), (e) => e instanceof OvsdbConnectionError && !e.unsent && /no answer/.test(e.message));
    const pending = other.transact(NB, [forever]);
    const closed = once(other, 'close');
    other.close();
    await assert.rejects(pending, (e) => e instanceof OvsdbConnectionError);
    await closed;
    assert.equal(other.closed, true);
    await assert.rejects(other.echo(), (e) => e instanceof OvsdbConnectionError && e.unsent);
  });

  it('measures the insert round trip', async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = process.hrtime.bigint();
      await c.transact(NB, [{ op: 'insert', table: 'Logical_Switch', row: { name: `rtt-${i}` } }]);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const p = (q: number): string => times[Math.floor(q * (times.length - 1))]!.toFixed(3);
    t.diagnostic(`transact insert round trip over 200 calls: p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, max ${p(1)} ms`);
    assert.ok(times.length === 200);
  });
});

describe('ovsdb session across a server restart', { skip: missing }, () => {
  let server: OvsdbServerFixture;
  before(async () => {
    server = new OvsdbServerFixture();
    await server.start();
  });
  after(async () => {
    await server?.destroy();
  });

  const count = async (s: OvsdbSession): Promise<number> => (await s.transact([{ op: 'select', table: 'Logical_Switch', where: [] }]))[0]!.rows!.length;

  it('reconnects lazily after the server restarted, keeping the data', async () => {
    const s = new OvsdbSession(server.socket, NB);
    try {
      await s.transact([{ op: 'insert', table: 'Logical_Switch', row: { name: 'before' } }]);
      const first = await s.client();
      await server.stop('SIGKILL');
      await server.start();
      assert.equal(await count(s), 1);
      assert.notEqual(await s.client(), first, 'a fresh connection');
      assert.equal(first.closed, true);
    } finally {
      s.close();
    }
  });

  it('retries once, after a wait, a call refused while the server is down', async () => {
    const s = new OvsdbSession(server.socket, NB, { retryDelayMs: 1000 });
    try {
      await s.client();
      await server.stop();
      const call = count(s);
      await sleep(100);
      await server.start();
      assert.equal(await call, 1);
    } finally {
      s.close();
    }
  });

  it('fails with the connection error when the server stays down; an OvsdbError reaches the caller as is', async () => {
    const s = new OvsdbSession(server.socket, NB, { retryDelayMs: 50 });
    try {
      await assert.rejects(s.transact([{ op: 'insert', table: 'Address_Set', row: { name: 5 } }]), (e) => e instanceof OvsdbError);
      await server.stop();
      await assert.rejects(count(s), (e) => e instanceof OvsdbConnectionError && e.unsent);
      await server.start();
      assert.equal(await count(s), 1);
    } finally {
      s.close();
    }
  });
});
