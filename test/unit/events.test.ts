import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, type DockerEvent } from '../../src/events/event-bus.js';
import { EventFilter, parseEventTime } from '../../src/events/event-filter.js';
import { InvalidParameter } from '../../src/errors.js';
import { stringifyJson } from '../../src/json-integer.js';

const f = (o: Record<string, string[]>): EventFilter => new EventFilter(new Map(Object.entries(o)));

function sample(bus: EventBus): DockerEvent[] {
  const seen: DockerEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  bus.container('start', { Id: 'abc123', Name: 'web', Config: { Image: 'busybox:latest', Labels: { app: 'shop', tier: 'front' } } });
  bus.emit('network', 'connect', 'net999', { container: 'abc123', name: 'frontend', type: 'bridge' });
  bus.emit('image', 'tag', 'sha256:feed', { name: 'busybox:v2' });
  bus.emit('volume', 'create', 'data', { driver: 'local' });
  bus.container('exec_start: sh -c true', { Id: 'abc123', Name: '/web', Config: { Image: 'busybox', Labels: null } }, { execID: 'e1' });
  return seen;
}

describe('EventBus', () => {
  it('builds Docker JSON, with the legacy fields for containers and images only', () => {
    const [start, net, img, vol] = sample(new EventBus());
    assert.deepEqual(Object.keys(start!), ['status', 'id', 'from', 'Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);
    assert.equal(start!.status, 'start');
    assert.equal(start!.from, 'busybox:latest');
    assert.deepEqual(start!.Actor, { ID: 'abc123', Attributes: { app: 'shop', tier: 'front', image: 'busybox:latest', name: 'web' } });
    assert.equal(start!.scope, 'local');
    assert.equal(BigInt(start!.time), start!.timeNano.value / 1_000_000_000n);
    // Nanoseconds, exact: the wire carries the bigint's digits, not a rounded double.
    assert.ok(Math.abs(Number(start!.timeNano.value / 1_000_000n) - Date.now()) < 5000);
    assert.match(stringifyJson(start), new RegExp(`,"timeNano":${start!.timeNano.value}}$`));
    assert.equal(net!.status, undefined);
    assert.equal(net!.id, undefined);
    assert.equal(img!.status, 'tag');
    assert.equal(img!.from, undefined);
    assert.equal(vol!.Actor.ID, 'data');
  });

  it('hands out increasing timeNano and keeps a bounded history in order', () => {
    const bus = new EventBus(3);
    for (let i = 0; i < 5; i++) bus.emit('volume', 'create', `v${i}`);
    const h = bus.history();
    assert.deepEqual(h.map((e) => e.Actor.ID), ['v2', 'v3', 'v4']);
    assert.ok(h[0]!.timeNano.value < h[1]!.timeNano.value && h[1]!.timeNano.value < h[2]!.timeNano.value);
  });

  it('stops calling an unsubscribed listener', () => {
    const bus = new EventBus();
    let n = 0;
    const off = bus.subscribe(() => n++);
    bus.emit('volume', 'create', 'a');
    off();
    bus.emit('volume', 'create', 'b');
    assert.equal(n, 1);
  });
});

describe('EventFilter', () => {
  const evs = sample(new EventBus());
  const ids = (flt: EventFilter): string[] => evs.filter((e) => flt.matches(e)).map((e) => `${e.Type}:${e.Action}`);

  it('passes everything without filters', () => assert.equal(ids(f({})).length, 5));
  it('filters by type and event', () => {
    assert.deepEqual(ids(f({ type: ['network', 'volume'] })), ['network:connect', 'volume:create']);
    assert.deepEqual(ids(f({ event: ['start'] })), ['container:start']);
  });
  it('matches exec_start by prefix (moby#25798)', () => {
    assert.deepEqual(ids(f({ event: ['exec_start'] })), ['container:exec_start: sh -c true']);
  });
  it('matches containers by name or id prefix', () => {
    assert.deepEqual(ids(f({ container: ['web'], type: ['container'] })), ['container:start', 'container:exec_start: sh -c true']);
    assert.deepEqual(ids(f({ container: ['abc'], type: ['container'] })), ['container:start', 'container:exec_start: sh -c true']);
    assert.deepEqual(ids(f({ container: ['nope'] })), []);
  });
  it('matches images by id, name or name without tag, and containers by their image', () => {
    assert.deepEqual(ids(f({ image: ['busybox'] })), ['container:start', 'image:tag', 'container:exec_start: sh -c true']);
    assert.deepEqual(ids(f({ image: ['sha256:feed'] })), ['image:tag']);
  });
  it('matches networks and volumes by name', () => {
    assert.deepEqual(ids(f({ network: ['frontend'] })), ['network:connect']);
    assert.deepEqual(ids(f({ volume: ['data'] })), ['volume:create']);
  });
  it('matches labels: every one given must hold', () => {
    assert.deepEqual(ids(f({ label: ['app=shop'] })), ['container:start']);
    assert.deepEqual(ids(f({ label: ['app=shop', 'tier'] })), ['container:start']);
    assert.deepEqual(ids(f({ label: ['app=other'] })), []);
  });
  it('matches the scope', () => {
    assert.equal(ids(f({ scope: ['local'] })).length, 5);
    assert.equal(ids(f({ scope: ['swarm'] })).length, 0);
  });
  it('refuses an unknown filter with Docker text', () => {
    assert.throws(() => f({ colour: ['red'] }), (e: unknown) => e instanceof InvalidParameter && e.message === "invalid filter 'colour'");
  });
});

describe('parseEventTime', () => {
  it('reads unix seconds with a fraction, in nanoseconds', () => {
    assert.equal(parseEventTime('1505028243'), 1505028243_000_000_000n);
    assert.equal(parseEventTime('1505028243.5'), 1505028243_500_000_000n);
    assert.equal(parseEventTime('1505028243.000000001'), 1505028243_000_000_001n);
    assert.equal(parseEventTime(''), undefined);
    assert.equal(parseEventTime(null), undefined);
  });
  it('reads RFC 3339', () => {
    assert.equal(parseEventTime('2017-09-10T07:24:03Z'), 1505028243_000_000_000n);
  });
  it("refuses anything else with moby's strconv text", () => {
    assert.throws(() => parseEventTime('bla'), { message: 'strconv.ParseInt: parsing "bla": invalid syntax' });
  });
});
