/**
 * Network policies through the API and `arca policy`: status codes and shapes, bad input refused
 * naming the field with nothing applied, the CLI's commands over DOCKER_HOST and -H, and on a
 * bridge network the kernel doing what the policies say (published ports included, a container
 * governed from its first packet, removal reopening at once).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { apiJson } from './policies-support.js';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUTSIDE_HOST_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { inNetns } from './networks-support.js';

const IMG = TEST_IMAGE;
const MAIN_JS = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'dist', 'src', 'cli', 'main.js');

const api = apiJson;

/** Runs `arca ARGS` as a user would (DOCKER_HOST from the harness unless `env` overrides it). */
function arca(d: TestDaemon, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [MAIN_JS, ...args], { env: opts.env ?? d.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (code) => {
      clearTimeout(t);
      res({ code: code ?? 1, stdout, stderr });
    });
    p.stdin.end(opts.input ?? '');
  });
}

const P = '/arca/v1/policies';

describe('network policies: API and CLI', () => {
  let d: TestDaemon;
  let dir: string;

  before(async () => {
    d = await startDaemon({ outside: true });
    dir = mkdtempSync(join(tmpdir(), 'arca-pol-'));
    await d.dockerOk(['network', 'create', 'papi']);
  });

  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await d?.cleanup();
  });

  it('PUT creates (201) then replaces (200); GET lists and shows counters; DELETE 204 then 404', async () => {
    const doc = { network: 'papi', select: { labels: { app: 'db' } }, ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }] };
    const created = await api(d, 'PUT', `${P}/db-from-api`, doc);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.name, 'db-from-api', 'the name comes from the path');
    assert.equal(created.body.network, 'papi');
    assert.deepEqual(created.body.ingress, doc.ingress);
    assert.ok(created.body.created && created.body.updated, JSON.stringify(created.body));

    const replaced = await api(d, 'PUT', `${P}/db-from-api`, { ...doc, name: 'db-from-api', egress: [] });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.deepEqual(replaced.body.egress, []);

    const list = await api(d, 'GET', P);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.map((p: { name: string }) => p.name), ['db-from-api']);

    const one = await api(d, 'GET', `${P}/db-from-api`);
    assert.equal(one.status, 200);
    assert.deepEqual(Object.keys(one.body.Counters).sort(), ['AllowedBytes', 'AllowedPackets', 'DroppedBytes', 'DroppedPackets']);
    for (const v of Object.values(one.body.Counters)) assert.equal(typeof v, 'number');

    const del = await api(d, 'DELETE', `${P}/db-from-api`);
    assert.equal(del.status, 204);
    assert.equal(del.body, undefined);
    const again = await api(d, 'DELETE', `${P}/db-from-api`);
    assert.equal(again.status, 404);
    assert.equal(typeof again.body.message, 'string');
    assert.match(again.body.message, /db-from-api/);
    assert.equal((await api(d, 'GET', `${P}/db-from-api`)).status, 404);
  });

  it('bad input: 400 naming the field, and nothing applied', async () => {
    const mismatch = await api(d, 'PUT', `${P}/one`, { name: 'two', network: 'papi' });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body.message, /name/);

    const badPort = await api(d, 'PUT', `${P}/bad-port`, { network: 'papi', ingress: [{ ports: [{ proto: 'tcp', port: 80 }, { proto: 'tcp', port: 70000 }] }] });
    assert.equal(badPort.status, 400, JSON.stringify(badPort.body));
    assert.match(badPort.body.message, /ingress\[0\]\.ports\[1\]\.port/);

    const unknown = await api(d, 'PUT', `${P}/unknown-key`, { network: 'papi', ingres: [] });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /ingres/);

    const badCidr = await api(d, 'PUT', `${P}/bad-cidr`, { network: 'papi', egress: [{ to: [{ cidr: '10.0.0.0/33' }] }] });
    assert.equal(badCidr.status, 400);
    assert.match(badCidr.body.message, /egress\[0\]\.to\[0\]\.cidr/);

    const badJson = await api(d, 'PUT', `${P}/bad-json`, '{"network": ');
    assert.equal(badJson.status, 400);

    // A driver that can enforce nothing refuses rather than ignores.
    const onHost = await api(d, 'PUT', `${P}/on-host`, { network: 'host', ingress: [] });
    assert.equal(onHost.status, 400, JSON.stringify(onHost.body));
    assert.match(onHost.body.message, /"host"/);

    // A file of several documents, the second bad: none of them is stored.
    const file = ['name: good-one', 'network: papi', 'ingress: []', '---', 'name: bad-two', 'network: papi', 'ingress:', '  - ports: [{proto: tcp, port: "9-1"}]', ''].join('\n');
    const multi = await api(d, 'POST', `${P}/apply`, file);
    assert.equal(multi.status, 400, JSON.stringify(multi.body));
    assert.match(multi.body.message, /ports\[0\]\.port/);
    assert.deepEqual((await api(d, 'GET', P)).body, [], 'nothing applied');

    const empty = await api(d, 'POST', `${P}/apply`, '');
    assert.equal(empty.status, 400);

    const noFrom = await api(d, 'POST', `${P}/check`, { to: 'x', port: '80/tcp' });
    assert.equal(noFrom.status, 400);
    assert.match(noFrom.body.message, /from/);
    const badCheckPort = await api(d, 'POST', `${P}/check`, { from: 'x', to: 'y', port: '80/icmp' });
    assert.equal(badCheckPort.status, 400);
    assert.match(badCheckPort.body.message, /port/);
    const noSuch = await api(d, 'POST', `${P}/check`, { from: 'nosuch', to: 'y', port: '80' });
    assert.equal(noSuch.status, 404);
    assert.match(noSuch.body.message, /No such container: nosuch/);
  });

  it('arca policy apply/ls/inspect/rm over DOCKER_HOST and -H', async () => {
    const file = join(dir, 'policies.yml');
    writeFileSync(
      file,
      [
        'name: cli-db',
        'network: papi',
        'select: {labels: {app: db}}',
        'ingress:',
        '  - from: [{labels: {app: api}}]',
        '    ports: [{proto: tcp, port: 5432}]',
        '---',
        'name: cli-quiet',
        'network: papi',
        'select: {names: [quiet]}',
        'egress: []',
        '',
      ].join('\n'),
    );
    const applied = await arca(d, ['policy', 'apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'policy/cli-db created\npolicy/cli-quiet created\n');
    const again = await arca(d, ['policy', 'apply', '-f', '-'], { input: '{"name": "cli-quiet", "network": "papi", "egress": []}' });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'policy/cli-quiet replaced\n');

    const ls = await arca(d, ['policy', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME\s+NETWORK\s+SELECT\s+INGRESS\s+EGRESS$/);
    assert.match(ls.stdout, /^cli-db\s+papi\s+app=db\s+1 rule\s+-$/m);
    assert.match(ls.stdout, /^cli-quiet\s+papi\s+\*\s+-\s+deny all$/m);
    const json = await arca(d, ['policy', 'ls', '--format', 'json']);
    const objs = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string });
    assert.deepEqual(objs.map((o) => o.name).sort(), ['cli-db', 'cli-quiet']);

    const inspect = await arca(d, ['policy', 'inspect', 'cli-db']);
    assert.equal(inspect.code, 0, inspect.stderr);
    const shown = JSON.parse(inspect.stdout) as Array<{ name: string; Counters: Record<string, number> }>;
    assert.equal(shown.length, 1);
    assert.equal(shown[0]!.name, 'cli-db');
    assert.equal(typeof shown[0]!.Counters.DroppedPackets, 'number');
    const missing = await arca(d, ['policy', 'inspect', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No such policy: nope/);

    // -H before the command, without DOCKER_HOST.
    const env = { ...d.env };
    delete env['DOCKER_HOST'];
    const viaH = await arca(d, ['-H', `unix://${d.socket}`, 'policy', 'ls', '-q'], { env });
    assert.equal(viaH.code, 0, viaH.stderr);
    assert.deepEqual(viaH.stdout.trim().split('\n').sort(), ['cli-db', 'cli-quiet']);
    const nowhere = await arca(d, ['-H', `unix://${dir}/none.sock`, 'policy', 'ls'], { env });
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /Cannot connect to the arca daemon/);

    const rm = await arca(d, ['policy', 'rm', 'cli-db', 'cli-quiet', 'nope']);
    assert.equal(rm.code, 1);
    assert.equal(rm.stdout, 'cli-db\ncli-quiet\n');
    assert.match(rm.stderr, /Error response from daemon: .*nope/);
    assert.deepEqual((await api(d, 'GET', P)).body, []);

    const noFile = await arca(d, ['policy', 'apply']);
    assert.equal(noFile.code, 2);
  });

  it('arca policy apply -f docker-compose.yml: the project defaults to the folder\'s name, as compose\'s', async () => {
    mkdirSync(join(dir, 'My.Shop'));
    const file = join(dir, 'My.Shop', 'docker-compose.yml');
    writeFileSync(
      file,
      [
        'version: "3.8"',
        'services:',
        '  db: {image: busybox}',
        '  api: {image: busybox}',
        'networks:',
        '  backend:',
        'x-arca-policies:',
        '  - name: shop-db',
        '    network: backend',
        '    select: {service: db}',
        '    ingress: [{from: [{service: api}], ports: [{proto: tcp, port: 5432}]}]',
        '',
      ].join('\n'),
    );
    const env = { ...d.env };
    delete env['COMPOSE_PROJECT_NAME'];
    const applied = await arca(d, ['policy', 'apply', '-f', file], { env });
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'policy/shop-db created\n');
    const shown = (await api(d, 'GET', `${P}/shop-db`)).body;
    assert.equal(shown.network, 'myshop_backend');
    assert.equal(shown.select.labels['com.docker.compose.project'], 'myshop');
    const withP = await arca(d, ['policy', 'apply', '-f', file, '-p', 'other'], { env });
    assert.equal(withP.stdout, 'policy/shop-db replaced\n', withP.stderr);
    assert.equal((await api(d, 'GET', `${P}/shop-db`)).body.network, 'other_backend');
    assert.equal((await api(d, 'DELETE', `${P}/shop-db`)).status, 204);
  });
});

/** `timeout`-bounded fetch from inside a container; true when the server answered. */
async function reaches(d: TestDaemon, from: string, addr: string, port: number): Promise<boolean> {
  const r = await d.docker(['exec', from, 'timeout', '2', 'wget', '-q', '-O', '-', `http://${addr}:${port}/hostname`]);
  return r.code === 0 && r.stdout.trim().length > 0;
}

describe('network policies on bridge: the kernel does what they say', () => {
  let d: TestDaemon;
  const ip: Record<string, string> = {};

  before(async () => {
    d = await startDaemon({ outside: true });
    await d.dockerOk(['network', 'create', 'backend']);
    // db serves 5432 and 80; web serves 80, published on 18080; api and other are clients.
    const serve = (port: number): string => `httpd -p ${port} -h /etc`;
    await d.dockerOk(['run', '-d', '--name', 'db', '--network', 'backend', '--label', 'app=db', IMG, 'sh', '-c', `${serve(5432)} && ${serve(80)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'web', '--network', 'backend', '--label', 'app=web', '-p', '18080:80', IMG, 'sh', '-c', `${serve(80)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'api', '--network', 'backend', '--label', 'app=api', IMG, 'sh', '-c', `${serve(8000)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'other', '--network', 'backend', '--label', 'app=other', IMG, 'sleep', '600']);
    for (const c of ['db', 'web', 'api', 'other']) ip[c] = await d.dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "backend").IPAddress}}', c]);
  });

  after(async () => {
    await d?.cleanup();
  });

  const outside = (port: number): boolean =>
    inNetns(d.outsideNs!, ['timeout', '3', 'busybox', 'wget', '-q', '-O', '-', `http://${OUTSIDE_HOST_ADDR}:${port}/hostname`]).code === 0;

  it('only api reaches db:5432; check agrees; removing the policy reopens at once', async () => {
    assert.ok(await reaches(d, 'other', ip.db!, 5432), 'open before any policy');
    const put = await api(d, 'PUT', `${P}/db-from-api`, {
      network: 'backend',
      select: { labels: { app: 'db' } },
      ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    // The API answers once enforced: no waiting here.
    assert.ok(await reaches(d, 'api', ip.db!, 5432), 'api → db:5432 allowed');
    assert.ok(!(await reaches(d, 'other', ip.db!, 5432)), 'other → db:5432 blocked');
    assert.ok(!(await reaches(d, 'api', ip.db!, 80)), 'api → db:80 blocked (port not in the rule)');
    assert.ok(await reaches(d, 'db', ip.api!, 8000), 'db → api: api is not selected, db egress not isolated');
    assert.ok(await reaches(d, 'other', ip.web!, 80), 'endpoints no policy selects behave as before');

    const allowed = await arca(d, ['policy', 'check', '--from', 'api', '--to', 'db', '--port', '5432/tcp']);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /^allowed\n/);
    assert.match(allowed.stdout, /db-from-api/);
    const denied = await arca(d, ['policy', 'check', '--from', 'other', '--to', ip.db!, '--port', '5432']);
    assert.equal(denied.code, 1, denied.stdout + denied.stderr);
    assert.match(denied.stdout, /^denied\n/);

    assert.equal((await api(d, 'DELETE', `${P}/db-from-api`)).status, 204);
    assert.ok(await reaches(d, 'other', ip.db!, 5432), 'reopened as soon as DELETE answered');
    assert.ok(await reaches(d, 'api', ip.db!, 80));
  });

  it('inspect counts what a policy allowed and dropped', async () => {
    const doc = { network: 'backend', select: { labels: { app: 'db' } }, ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/counted`, doc)).status, 201);
    assert.ok(await reaches(d, 'api', ip.db!, 5432));
    assert.ok(!(await reaches(d, 'other', ip.db!, 5432)));
    const counters = (await api(d, 'GET', `${P}/counted`)).body.Counters;
    assert.ok(counters.AllowedPackets > 0 && counters.AllowedBytes > 0, JSON.stringify(counters));
    assert.ok(counters.DroppedPackets > 0 && counters.DroppedBytes > 0, JSON.stringify(counters));
    const cli = JSON.parse((await arca(d, ['policy', 'inspect', 'counted'])).stdout) as Array<{ Counters: Record<string, number> }>;
    assert.ok(cli[0]!.Counters.DroppedPackets >= counters.DroppedPackets);
    assert.equal((await api(d, 'DELETE', `${P}/counted`)).status, 204);
  });

  it('a published port stays open only if a rule allows it', async () => {
    assert.ok(outside(18080), 'published port open before any policy');
    const only = { network: 'backend', select: { labels: { app: 'web' } }, ingress: [{ from: [{ labels: { app: 'api' } }] }] };
    assert.equal((await api(d, 'PUT', `${P}/web-in`, only)).status, 201);
    assert.ok(!outside(18080), 'the client outside is not allowed');
    assert.ok(await reaches(d, 'api', ip.web!, 80));
    const withOutside = { ...only, ingress: [...only.ingress, { from: [{ cidr: '198.18.0.0/15' }], ports: [{ proto: 'tcp', port: 80 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/web-in`, withOutside)).status, 200);
    assert.ok(outside(18080), 'a cidr rule on the container port opens the published port');
    assert.ok(!(await reaches(d, 'other', ip.web!, 80)), 'other still not allowed');
    assert.equal((await api(d, 'DELETE', `${P}/web-in`)).status, 204);
    assert.ok(await reaches(d, 'other', ip.web!, 80));
  });

  it('a rename is followed (names selectors), and policies survive a daemon restart', async () => {
    const doc = { network: 'backend', select: { names: ['renamed'] }, egress: [] };
    assert.equal((await api(d, 'PUT', `${P}/by-name`, doc)).status, 201);
    assert.ok(await reaches(d, 'other', ip.api!, 8000), 'other is not selected yet');
    await d.dockerOk(['rename', 'other', 'renamed']);
    // A rename answers before the ruleset follows it: give it a moment.
    let blocked = false;
    for (let i = 0; i < 20 && !blocked; i++) blocked = !(await reaches(d, 'renamed', ip.api!, 8000));
    assert.ok(blocked, 'selected by its new name');
    await d.restart();
    assert.equal((await api(d, 'GET', `${P}/by-name`)).status, 200);
    assert.ok(!(await reaches(d, 'renamed', ip.api!, 8000)), 'still governed after a daemon restart');
    await d.dockerOk(['rename', 'renamed', 'other']);
    let open = false;
    for (let i = 0; i < 20 && !open; i++) open = await reaches(d, 'other', ip.api!, 8000);
    assert.ok(open, 'the old name no longer selects it');
    assert.equal((await api(d, 'DELETE', `${P}/by-name`)).status, 204);
  });

  it('docker network connect: a running container is governed on the new network at once', async () => {
    const doc = { network: 'backend', select: { names: ['late'] }, egress: [] };
    assert.equal((await api(d, 'PUT', `${P}/late-out`, doc)).status, 201);
    await d.dockerOk(['run', '-d', '--name', 'late', IMG, 'sleep', '600']);
    await d.dockerOk(['network', 'connect', 'backend', 'late']);
    assert.ok(!(await reaches(d, 'late', ip.api!, 8000)), 'selected as soon as connect answered');
    assert.equal((await api(d, 'DELETE', `${P}/late-out`)).status, 204);
    assert.ok(await reaches(d, 'late', ip.api!, 8000));
    await d.dockerOk(['rm', '-f', 'late']);
  });

  it('a container started after the policy is governed from its first packet', async () => {
    const locked = { network: 'backend', select: { labels: { app: 'locked' } }, egress: [] };
    assert.equal((await api(d, 'PUT', `${P}/locked-out`, locked)).status, 201);
    // The probe is the container's very first action: had publish run after the process started,
    // its first connection could slip through.
    const probe = `timeout 2 wget -q -O - http://${ip.api}:8000/hostname >/dev/null && echo OPEN || echo CLOSED`;
    const first = await d.docker(['run', '--rm', '--network', 'backend', '--label', 'app=locked', IMG, 'sh', '-c', probe]);
    assert.equal(first.stdout.trim(), 'CLOSED', first.stdout + first.stderr);
    const free = await d.docker(['run', '--rm', '--network', 'backend', '--label', 'app=free', IMG, 'sh', '-c', probe]);
    assert.equal(free.stdout.trim(), 'OPEN', 'a container no policy selects: ' + free.stdout + free.stderr);
    // Name resolution keeps working under a deny-all egress (the embedded DNS is always allowed).
    const dns = await d.docker(['run', '--rm', '--network', 'backend', '--label', 'app=locked', IMG, 'nslookup', 'api']);
    assert.equal(dns.code, 0, dns.stdout + dns.stderr);
    assert.equal((await api(d, 'DELETE', `${P}/locked-out`)).status, 204);
  });
});
