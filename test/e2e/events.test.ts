/**
 * `docker events` and the swarm-only endpoints, with the docker CLI and docker-py: container,
 * network and volume events in Docker's order and JSON, live streaming, `--since`/`--until`,
 * filters, and Docker's answers to bad input.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';
import { eventually, rawRequest } from './containers-support.js';

interface Ev {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  status?: string;
  id?: string;
  from?: string;
  scope: string;
  time: number;
  timeNano: number;
}

describe('events', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  /** Events between two moments, as `docker events --since --until` prints them in JSON. */
  const between = async (since: number, until: number, ...filters: string[]): Promise<Ev[]> => {
    const out = await d.dockerOk(['events', '--since', String(since), '--until', String(until), '--format', '{{json .}}', ...filters.flatMap((f) => ['--filter', f])]);
    return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Ev);
  };
  const now = (): number => Date.now() / 1000;

  it('a container life cycle, in Docker order and JSON', async () => {
    const t0 = now();
    await d.dockerOk(['volume', 'create', 'evvol']);
    const id = await d.dockerOk(['run', '-d', '--name', 'evc', '--label', 'team=blue', '-v', 'evvol:/data', TEST_IMAGE, 'sleep', '60']);
    await d.dockerOk(['pause', 'evc']);
    await d.dockerOk(['unpause', 'evc']);
    await d.dockerOk(['rename', 'evc', 'evc2']);
    await d.dockerOk(['stop', '-t', '1', 'evc2']);
    await d.dockerOk(['rm', 'evc2']);
    await d.dockerOk(['volume', 'rm', 'evvol']);
    const evs = await between(t0, now() + 0.5);
    const seq = evs.map((e) => `${e.Type} ${e.Action}`);
    const want = [
      'volume create', 'container create', 'network connect', 'volume mount', 'container start', 'container pause', 'container unpause',
      'container rename', 'container kill', 'container die', 'network disconnect', 'volume unmount', 'container stop', 'container destroy', 'volume destroy',
    ];
    // Every expected event is there, in this order (connect/mount order within start may differ).
    const at = want.map((w) => seq.indexOf(w));
    assert.ok(at.every((i) => i >= 0), `missing ${want.filter((_, i) => at[i]! < 0).join(', ')} in ${seq.join(', ')}`);
    for (const pair of [['container create', 'container start'], ['container start', 'container pause'], ['container kill', 'container die'], ['container die', 'network disconnect'], ['container die', 'container stop'], ['container stop', 'container destroy']]) {
      assert.ok(seq.indexOf(pair[0]!) < seq.indexOf(pair[1]!), `${pair[0]} before ${pair[1]}: ${seq.join(', ')}`);
    }
    const start = evs.find((e) => e.Action === 'start')!;
    assert.equal(start.status, 'start');
    assert.equal(start.id, id);
    assert.equal(start.from, TEST_IMAGE);
    assert.equal(start.scope, 'local');
    assert.deepEqual(start.Actor, { ID: id, Attributes: { team: 'blue', image: TEST_IMAGE, name: 'evc' } });
    assert.equal(start.time, Math.floor(start.timeNano / 1e9));
    // On the wire timeNano is an exact integer (above 2^53): strictly increasing, its seconds the `time`.
    const raw = await rawRequest(d.socket, 'GET', `/v1.41/events?since=${t0}&until=${now()}`);
    const lines = raw.body.split('\n').filter(Boolean);
    assert.ok(lines.length >= want.length);
    const nanos = lines.map((l) => BigInt(/"timeNano":(\d+)\}$/.exec(l)?.[1] ?? -1));
    lines.forEach((l, i) => assert.equal(BigInt((JSON.parse(l) as Ev).time), nanos[i]! / 1_000_000_000n, l));
    nanos.slice(1).forEach((n, i) => assert.ok(n > nanos[i]!, `${n} after ${nanos[i]}`));
    assert.equal(evs.find((e) => e.Action === 'kill')!.Actor.Attributes['signal'], '15');
    // busybox's sleep as pid 1 ignores TERM: the stop ends with a KILL after its timeout.
    assert.deepEqual(evs.filter((e) => e.Action === 'kill').map((e) => e.Actor.Attributes['signal']), ['15', '9']);
    assert.equal(evs.find((e) => e.Action === 'die')!.Actor.Attributes['exitCode'], '137');
    assert.equal(evs.find((e) => e.Action === 'rename')!.Actor.Attributes['oldName'], '/evc');
    const connect = evs.find((e) => e.Action === 'connect')!;
    assert.equal(connect.Actor.Attributes['container'], id);
    assert.equal(connect.Actor.Attributes['name'], 'bridge');
    assert.equal(connect.Actor.Attributes['type'], 'bridge');
    assert.equal(connect.status, undefined, 'legacy fields are for containers and images only');
    const mount = evs.find((e) => e.Action === 'mount')!;
    assert.deepEqual(mount.Actor, { ID: 'evvol', Attributes: { container: id, destination: '/data', driver: 'local', propagation: '', 'read/write': 'true' } });
  });

  it('exec, network and image events, and filters', async () => {
    const t0 = now();
    await d.dockerOk(['network', 'create', 'evnet']);
    await d.dockerOk(['run', '-d', '--name', 'evx', '--network', 'evnet', TEST_IMAGE, 'sleep', '60']);
    await d.dockerOk(['exec', 'evx', 'sh', '-c', 'exit 3']).catch(() => {});
    await d.dockerOk(['tag', TEST_IMAGE, 'evtag:1']);
    await d.dockerOk(['rmi', 'evtag:1']);
    await d.dockerOk(['rm', '-f', 'evx']);
    await d.dockerOk(['network', 'rm', 'evnet']);
    const t1 = now() + 0.5;
    const all = await between(t0, t1);
    const acts = all.map((e) => `${e.Type} ${e.Action}`);
    for (const w of ['network create', 'container exec_create: sh -c exit 3', 'container exec_start: sh -c exit 3', 'container exec_die', 'image tag', 'image untag', 'container kill', 'container destroy', 'network destroy']) {
      assert.ok(acts.includes(w), `${w} missing in ${acts.join(', ')}`);
    }
    assert.equal(all.find((e) => e.Action === 'exec_die')!.Actor.Attributes['exitCode'], '3');
    assert.equal(all.find((e) => e.Action === 'kill')!.Actor.Attributes['signal'], '9');
    assert.equal(all.find((e) => e.Action === 'tag')!.Actor.Attributes['name'], 'evtag:1');

    const nets = await between(t0, t1, 'type=network');
    assert.deepEqual(nets.map((e) => e.Action), ['create', 'connect', 'disconnect', 'destroy']);
    assert.ok(nets.every((e) => e.Actor.Attributes['name'] === 'evnet'));
    const byName = await between(t0, t1, 'container=evx', 'event=die');
    assert.equal(byName.length, 1);
    const execs = await between(t0, t1, 'event=exec_start');
    assert.deepEqual(execs.map((e) => e.Action), ['exec_start: sh -c exit 3']);
    const imgs = await between(t0, t1, 'type=image', 'image=evtag');
    assert.deepEqual(imgs.map((e) => e.Action), ['tag']);
  });

  it('docker save and docker build: image events as moby logs them', async () => {
    const t0 = now();
    const id = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]);
    const dir = mkdtempSync(join(tmpdir(), 'arca-events-'));
    try {
      await d.dockerOk(['save', '-o', join(dir, 'saved.tar'), TEST_IMAGE]);
      mkdirSync(join(dir, 'ctx'));
      writeFileSync(join(dir, 'ctx', 'Dockerfile'), `FROM ${TEST_IMAGE}\nLABEL evbuild=yes\n`);
      await d.dockerOk(['build', '-q', '-t', 'evbuild:1', '-t', 'evbuild:2', join(dir, 'ctx')], { timeoutMs: 120_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const built = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', 'evbuild:1']);
    await d.dockerOk(['rmi', 'evbuild:1', 'evbuild:2']);
    const imgs = await between(t0, now() + 0.5, 'type=image');
    // One save per image, named by its id; the classic builder's result is tagged once per -t (the
    // base image handed to the builder is neither a save nor a load).
    assert.deepEqual(imgs.map((e) => e.Action), ['save', 'tag', 'tag', 'untag', 'untag', 'delete']);
    const save = imgs[0]!;
    assert.equal(save.Actor.ID, id);
    assert.equal(save.Actor.Attributes['name'], id);
    assert.equal(save.status, 'save');
    const tags = imgs.filter((e) => e.Action === 'tag');
    assert.deepEqual(tags.map((e) => [e.Actor.ID, e.Actor.Attributes['name']]), [[built, 'evbuild:1'], [built, 'evbuild:2']]);
    assert.equal(tags[0]!.Actor.Attributes['evbuild'], 'yes', 'the built image labels its events');
  });

  it('prunes log one event per type, naming no object, with what they reclaimed', async () => {
    const t0 = now();
    await d.dockerOk(['run', '--name', 'evprune', TEST_IMAGE, 'sh', '-c', 'head -c 200000 /dev/zero > /written']);
    const containerPrune = await d.dockerOk(['container', 'prune', '-f']);
    assert.match(containerPrune, /Total reclaimed space: 20\d(\.\d+)?kB/, 'the container layer it wrote counts');
    for (const kind of ['image', 'network', 'volume', 'builder']) await d.dockerOk([kind, 'prune', '-f']);
    const evs = await between(t0, now() + 0.5, 'event=prune');
    assert.deepEqual(evs.map((e) => e.Type), ['container', 'image', 'network', 'volume', 'builder']);
    for (const e of evs) {
      assert.equal(e.Actor.ID, '');
      assert.match(e.Actor.Attributes['reclaimed'] ?? '', /^\d+$/, `${e.Type} prune reclaimed`);
    }
    assert.ok(Number(evs[0]!.Actor.Attributes['reclaimed']) >= 200_000, 'container prune reclaimed what the container wrote');
    const image = evs.find((e) => e.Type === 'image')!;
    assert.equal(image.status, 'prune');
    assert.ok(!('id' in image), 'an empty id is left out, as Go omits it');
    const destroyed = await between(t0, now() + 0.5, 'container=evprune', 'event=destroy');
    assert.equal(destroyed.length, 1, 'the pruned container was destroyed');
  });

  it('streams live events until the client leaves', async () => {
    const child = spawn('docker', ['events', '--filter', 'container=evlive', '--format', '{{.Type}} {{.Action}}'], { env: d.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await new Promise((r) => setTimeout(r, 300));
      await d.dockerOk(['run', '--rm', '--name', 'evlive', TEST_IMAGE, 'true']);
      await eventually('destroy in the live stream', () => (out.includes('container destroy') ? true : undefined), 10_000);
      const lines = out.trim().split('\n');
      assert.deepEqual(lines.filter((l) => l.startsWith('container')), ['container create', 'container attach', 'container start', 'container die', 'container destroy']);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a future --until ends the stream at that time', async () => {
    const t0 = Date.now();
    const r = await d.docker(['events', '--until', String(now() + 1.5)], { timeoutMs: 10_000 });
    assert.equal(r.code, 0);
    assert.ok(Date.now() - t0 >= 1000, 'returned before its --until');
  });

  it("bad input: Docker's status codes and texts", async () => {
    const api = (q: string) => rawRequest(d.socket, 'GET', `/v1.51/events?${q}`);
    let r = await api('since=bla');
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).message, 'strconv.ParseInt: parsing "bla": invalid syntax');
    r = await api('since=10&until=3');
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).message, '`since` time (10) cannot be after `until` time (3)');
    r = await api(`filters=${encodeURIComponent('{"colour":{"red":true}}')}`);
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).message, "invalid filter 'colour'");
    r = await api('filters=%7Bnot-json');
    assert.equal(r.status, 400);
    const cli = await d.docker(['events', '--filter', 'colour=red']);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /invalid filter 'colour'/);
  });

  it('docker-py reads events with since/until and decode', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys, time
c = docker.DockerClient(base_url=sys.argv[1])
t0 = time.time()
c.volumes.create("pyvol")
c.volumes.get("pyvol").remove()
evs = list(c.events(since=t0 - 1, until=time.time() + 1, decode=True, filters={"type": "volume"}))
print(",".join(e["Action"] + ":" + e["Actor"]["ID"] for e in evs))
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'create:pyvol,destroy:pyvol');
  });
});

describe('swarm-only endpoints on a node outside a swarm', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ loadTestImage: false });
  });

  after(async () => {
    await d?.cleanup();
  });

  const MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

  it("docker node ls and service ls print Docker's message", async () => {
    for (const args of [['node', 'ls'], ['service', 'ls'], ['secret', 'ls'], ['config', 'ls']]) {
      const r = await d.docker(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stderr.trim(), `Error response from daemon: ${MANAGER}`, args.join(' '));
    }
  });

  it('answers 503 with moby texts, leave says the node is not part of a swarm', async () => {
    for (const [method, path] of [['GET', '/swarm'], ['GET', '/nodes'], ['GET', '/nodes/abc'], ['DELETE', '/services/x'], ['GET', '/tasks'], ['POST', '/secrets/create'], ['GET', '/configs'], ['GET', '/swarm/unlockkey'], ['POST', '/swarm/update']] as const) {
      const r = await rawRequest(d.socket, method, `/v1.51${path}`);
      assert.equal(r.status, 503, `${method} ${path}`);
      assert.equal(JSON.parse(r.body).message, MANAGER);
    }
    const r = await rawRequest(d.socket, 'POST', '/v1.51/swarm/leave?force=1');
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).message, 'This node is not part of a swarm');
    const info = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/info')).body) as { Swarm: { LocalNodeState: string } };
    assert.equal(info.Swarm.LocalNodeState, 'inactive');
  });

  it('docker-py: leave(force=True) is "nothing to leave", leave() raises APIError 503', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
print(c.swarm.leave(force=True))
try:
    c.swarm.leave()
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['True', '503 This node is not part of a swarm']);
  });
});
