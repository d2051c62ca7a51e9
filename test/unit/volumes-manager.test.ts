import { after, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore } from '../../src/state/store.js';
import { ANONYMOUS_LABEL, VolumeManager, formatRfc3339 } from '../../src/volumes/volume-manager.js';
import { Conflict, InvalidParameter, NotFound } from '../../src/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'arca-volumes-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fresh(): { store: StateStore; dir: string; vm: VolumeManager; users: Map<string, string[]> } {
  const root = join(tmp, `r${n++}`);
  const store = new StateStore(root);
  const dir = join(root, 'volumes');
  const vm = new VolumeManager(store, dir);
  const users = new Map<string, string[]>();
  vm.setUsageCheck((name) => users.get(name) ?? []);
  return { store, dir, vm, users };
}

/** Waits for background deletions of removed volumes' data. */
async function settle(dir: string): Promise<void> {
  for (let i = 0; i < 100 && readdirSync(dir).some((e) => e.startsWith('.trash-')); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('VolumeManager', () => {
  let t: ReturnType<typeof fresh>;
  beforeEach(() => {
    t = fresh();
  });

  it('creates a folder and a record, Docker-shaped', () => {
    const v = t.vm.create({ name: 'data', labels: { a: 'b' }, driverOpts: {} });
    assert.deepEqual(Object.keys(v).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
    assert.equal(v.Driver, 'local');
    assert.equal(v.Scope, 'local');
    assert.equal(v.Mountpoint, join(t.dir, 'data', '_data'));
    assert.deepEqual(v.Labels, { a: 'b' });
    assert.deepEqual(v.Options, {});
    assert.match(v.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
    assert.ok(existsSync(v.Mountpoint));
    assert.deepEqual(t.vm.get('data'), v);
  });

  it('keeps null labels and options when none were sent', () => {
    const v = t.vm.ensure('plain');
    assert.equal(v.Labels, null);
    assert.equal(v.Options, null);
  });

  it('re-creating a name returns the existing volume unchanged', () => {
    const a = t.vm.create({ name: 'same', labels: { x: '1' } });
    const b = t.vm.create({ name: 'same', labels: { y: '2' } });
    assert.deepEqual(b, a);
    assert.deepEqual(t.vm.ensure('same'), a);
  });

  it('an empty name makes an anonymous volume with a random 64-hex name and the anonymous label', () => {
    const v = t.vm.create({ name: '', labels: { k: 'v' } });
    assert.match(v.Name, /^[0-9a-f]{64}$/);
    assert.deepEqual(v.Labels, { k: 'v', [ANONYMOUS_LABEL]: '' });
    assert.match(t.vm.ensure('').Name, /^[0-9a-f]{64}$/);
  });

  it('refuses bad names, unknown drivers and driver options, leaving nothing behind', () => {
    assert.throws(() => t.vm.create({ name: 'a b' }), InvalidParameter);
    assert.throws(() => t.vm.create({ name: 'x', driver: 'nfs' }), {
      message: 'create x: error looking up volume plugin nfs: plugin "nfs" not found',
    });
    assert.throws(() => t.vm.create({ name: 'x', driver: 'nfs' }), NotFound);
    assert.throws(() => t.vm.create({ name: 'xx', driverOpts: { bogus: '1' } }), { message: 'create xx: invalid option: "bogus"' });
    assert.throws(() => t.vm.create({ name: 'xx', driverOpts: { type: 'nfs' } }), {
      message: 'create xx: missing required option: "device"',
    });
    assert.throws(() => t.vm.create({ name: 'xx', driverOpts: { type: 'tmpfs', device: 'tmpfs' } }), InvalidParameter);
    assert.deepEqual(readdirSync(t.dir), []);
    assert.deepEqual(t.vm.list(), []);
  });

  it('leaves no folder when the database write fails', () => {
    t.store.db.exec(`CREATE TRIGGER no_insert BEFORE INSERT ON volumes BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    assert.throws(() => t.vm.create({ name: 'doomed' }), /create doomed: disk says no/);
    assert.equal(existsSync(join(t.dir, 'doomed')), false);
  });

  it('leaves no record when the folder cannot be made', () => {
    writeFileSync(join(t.dir, 'blocked'), 'a file where the folder should go');
    assert.throws(() => t.vm.create({ name: 'blocked' }), /create blocked:/);
    assert.throws(() => t.vm.get('blocked'), NotFound);
  });

  it('get and remove of a missing volume say "no such volume"; force makes remove a no-op', () => {
    assert.throws(() => t.vm.get('nope'), { message: 'get nope: no such volume' });
    assert.throws(() => t.vm.remove('nope'), { message: 'get nope: no such volume' });
    t.vm.remove('nope', true);
  });

  it('refuses to remove a volume in use, even with force', async () => {
    t.vm.create({ name: 'busy' });
    t.users.set('busy', ['c1', 'c2']);
    for (const force of [false, true]) {
      assert.throws(() => t.vm.remove('busy', force), (e: unknown) => {
        assert.ok(e instanceof Conflict);
        assert.equal(e.message, 'remove busy: volume is in use - [c1, c2]');
        return true;
      });
    }
    t.users.delete('busy');
    writeFileSync(join(t.vm.get('busy').Mountpoint, 'f'), 'x');
    t.vm.remove('busy');
    assert.throws(() => t.vm.get('busy'), NotFound);
    assert.equal(existsSync(join(t.dir, 'busy')), false);
    await settle(t.dir);
    assert.deepEqual(readdirSync(t.dir), []);
  });

  it('lists sorted by name with filters', () => {
    t.vm.create({ name: 'b-vol', labels: { app: 'x' } });
    t.vm.create({ name: 'a-vol' });
    t.users.set('a-vol', ['c1']);
    assert.deepEqual(t.vm.list().map((v) => v.Name), ['a-vol', 'b-vol']);
    assert.deepEqual(t.vm.list(new Map([['dangling', ['true']]])).map((v) => v.Name), ['b-vol']);
    assert.deepEqual(t.vm.list(new Map([['label', ['app=x']]])).map((v) => v.Name), ['b-vol']);
    assert.throws(() => t.vm.list(new Map([['bogus', ['1']]])), { message: "invalid filter 'bogus'" });
  });

  it('prunes unused anonymous volumes by default, all unused with all=true, and counts bytes', async () => {
    const anon = t.vm.create({});
    const anonBusy = t.vm.create({});
    t.vm.create({ name: 'named' });
    t.users.set(anonBusy.Name, ['c1']);
    writeFileSync(join(anon.Mountpoint, 'f'), 'hello');
    mkdirSync(join(anon.Mountpoint, 'sub'));
    writeFileSync(join(anon.Mountpoint, 'sub', 'g'), 'abc');
    assert.deepEqual(t.vm.prune(), { VolumesDeleted: [anon.Name], SpaceReclaimed: 8 });
    assert.deepEqual(t.vm.prune(), { VolumesDeleted: [], SpaceReclaimed: 0 });
    assert.deepEqual(t.vm.prune(new Map([['all', ['true']]])), { VolumesDeleted: ['named'], SpaceReclaimed: 0 });
    assert.deepEqual(t.vm.list().map((v) => v.Name), [anonBusy.Name]);
    await settle(t.dir);
  });

  it('start-up sweep: restores missing folders, drops empty orphans, adopts orphans with data', () => {
    t.vm.create({ name: 'kept' });
    rmSync(join(t.dir, 'kept'), { recursive: true });
    mkdirSync(join(t.dir, 'half', '_data'), { recursive: true });
    mkdirSync(join(t.dir, 'orphan', '_data'), { recursive: true });
    writeFileSync(join(t.dir, 'orphan', '_data', 'f'), 'x');
    mkdirSync(join(t.dir, '.trash-0123'));
    const again = new VolumeManager(t.store, t.dir);
    assert.ok(existsSync(join(t.dir, 'kept', '_data')));
    assert.equal(existsSync(join(t.dir, 'half')), false);
    assert.deepEqual(again.list().map((v) => v.Name), ['kept', 'orphan']);
    assert.equal(again.get('orphan').Labels, null);
  });

  it('formats CreatedAt as Go RFC3339', () => {
    const s = formatRfc3339(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)));
    assert.match(s, /^2024-01-0[12]T\d\d:\d\d:05(Z|[+-]\d\d:\d\d)$/);
  });
});
