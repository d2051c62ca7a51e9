/**
 * Network policies on an `ovn` network, through the API: OVN's ACLs do what the policies say
 * (isolation, allowed port, replies, published ports from a client outside, a container governed
 * from its first packet, removal reopening at once), the rows are in NB, counters come back, and
 * a policy selecting 100 containers is enforced when PUT answers (its time is printed).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { apiJson } from './policies-support.js';
import { join } from 'node:path';
import { OUTSIDE_HOST_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { inNetns } from './networks-support.js';

const IMG = TEST_IMAGE;
const P = '/arca/v1/policies';
const NET = 'backend-ovn';

const skipWithoutOvn: false | string =
  spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd'], { encoding: 'utf8' }).status === 0
    ? false
    : 'OVN is not installed (Debian packages openvswitch-switch, ovn-central, ovn-host; scripts/setup.sh installs them)';

const api = apiJson;

async function reaches(d: TestDaemon, from: string, addr: string, port: number): Promise<boolean> {
  const r = await d.docker(['exec', from, 'timeout', '2', 'wget', '-q', '-O', '-', `http://${addr}:${port}/hostname`]);
  return r.code === 0 && r.stdout.trim().length > 0;
}

function nbctl(d: TestDaemon, ...args: string[]): string {
  const r = spawnSync('ovn-nbctl', [`--db=unix:${join(d.execRoot, 'ovn', 'ovnnb_db.sock')}`, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ovn-nbctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

describe('network policies on ovn: OVN ACLs do what they say', { skip: skipWithoutOvn }, () => {
  let d: TestDaemon;
  const ip: Record<string, string> = {};
  const serve = (port: number): string => `httpd -p ${port} -h /etc`;

  before(async () => {
    d = await startDaemon({ outside: true });
    await d.dockerOk(['network', 'create', '-d', 'ovn', '--subnet', '10.202.0.0/24', NET]);
    await d.dockerOk(['run', '-d', '--name', 'db', '--network', NET, '--label', 'app=db', IMG, 'sh', '-c', `${serve(5432)} && ${serve(80)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'web', '--network', NET, '--label', 'app=web', '-p', '18081:80', IMG, 'sh', '-c', `${serve(80)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'api', '--network', NET, '--label', 'app=api', IMG, 'sh', '-c', `${serve(8000)} && exec sleep 600`]);
    await d.dockerOk(['run', '-d', '--name', 'other', '--network', NET, '--label', 'app=other', IMG, 'sleep', '600']);
    for (const c of ['db', 'web', 'api', 'other']) ip[c] = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, c]);
  });

  after(async () => {
    await d?.cleanup();
  });

  const outside = (port: number): boolean =>
    inNetns(d.outsideNs!, ['timeout', '3', 'busybox', 'wget', '-q', '-O', '-', `http://${OUTSIDE_HOST_ADDR}:${port}/hostname`]).code === 0;

  it('only api reaches db:5432; replies pass; the rows are in NB; counters; removal reopens at once', async () => {
    assert.ok(await reaches(d, 'other', ip.db!, 5432), 'open before any policy');
    const put = await api(d, 'PUT', `${P}/db-from-api`, {
      network: NET,
      select: { labels: { app: 'db' } },
      ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    // The API answers once enforced: no waiting here.
    assert.ok(await reaches(d, 'api', ip.db!, 5432), 'api → db:5432 allowed');
    assert.ok(!(await reaches(d, 'other', ip.db!, 5432)), 'other → db:5432 blocked');
    assert.ok(!(await reaches(d, 'api', ip.db!, 80)), 'api → db:80 blocked (port not in the rule)');
    assert.ok(await reaches(d, 'db', ip.api!, 8000), 'db → api: api is not selected, db egress not isolated, replies pass');
    assert.ok(await reaches(d, 'other', ip.web!, 80), 'endpoints no policy selects behave as before');
    const acls = nbctl(d, '--bare', '--columns=name', 'find', 'ACL', 'external_ids:arca-policy=db-from-api');
    assert.match(acls, /arca:db-from-api:in:0/);

    const counters = (await api(d, 'GET', `${P}/db-from-api`)).body.Counters;
    assert.ok(counters.DroppedPackets > 0, JSON.stringify(counters));
    assert.ok(counters.AllowedPackets > 0, JSON.stringify(counters));

    assert.equal((await api(d, 'DELETE', `${P}/db-from-api`)).status, 204);
    assert.ok(await reaches(d, 'other', ip.db!, 5432), 'reopened as soon as DELETE answered');
    assert.equal(nbctl(d, '--bare', '--columns=name', 'find', 'Port_Group', 'external_ids:arca-policy=db-from-api'), '');
  });

  it('a published port stays open only if a rule allows it', async () => {
    assert.ok(outside(18081), 'published port open before any policy');
    const only = { network: NET, select: { labels: { app: 'web' } }, ingress: [{ from: [{ labels: { app: 'api' } }] }] };
    assert.equal((await api(d, 'PUT', `${P}/web-in`, only)).status, 201);
    assert.ok(!outside(18081), 'the client outside is not allowed');
    assert.ok(await reaches(d, 'api', ip.web!, 80));
    const withOutside = { ...only, ingress: [...only.ingress, { from: [{ cidr: '198.18.0.0/15' }], ports: [{ proto: 'tcp', port: 80 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/web-in`, withOutside)).status, 200);
    assert.ok(outside(18081), 'a cidr rule on the container port opens the published port');
    assert.ok(!(await reaches(d, 'other', ip.web!, 80)), 'other still not allowed');
    assert.equal((await api(d, 'DELETE', `${P}/web-in`)).status, 204);
    assert.ok(await reaches(d, 'other', ip.web!, 80));
  });

  it('a container started after the policy is governed from its first packet; its DNS still answers', async () => {
    const locked = { network: NET, select: { labels: { app: 'locked' } }, egress: [] };
    assert.equal((await api(d, 'PUT', `${P}/locked-out`, locked)).status, 201);
    const probe = `timeout 2 wget -q -O - http://${ip.api}:8000/hostname >/dev/null && echo OPEN || echo CLOSED`;
    const first = await d.docker(['run', '--rm', '--network', NET, '--label', 'app=locked', IMG, 'sh', '-c', probe]);
    assert.equal(first.stdout.trim(), 'CLOSED', first.stdout + first.stderr);
    const free = await d.docker(['run', '--rm', '--network', NET, '--label', 'app=free', IMG, 'sh', '-c', probe]);
    assert.equal(free.stdout.trim(), 'OPEN', 'a container no policy selects: ' + free.stdout + free.stderr);
    const dns = await d.docker(['run', '--rm', '--network', NET, '--label', 'app=locked', IMG, 'nslookup', 'api']);
    assert.equal(dns.code, 0, dns.stdout + dns.stderr);
    assert.equal((await api(d, 'DELETE', `${P}/locked-out`)).status, 204);
  });

  it('a daemon restart (SIGTERM, then kill -9) keeps the policy enforced', async () => {
    const doc = { network: NET, select: { labels: { app: 'db' } }, ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/db-kept`, doc)).status, 201);
    const groups = nbctl(d, '--bare', '--columns=name', 'find', 'Port_Group', 'external_ids:arca-policy=db-kept');
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await d.restart({ signal });
      assert.ok(!(await reaches(d, 'other', ip.db!, 5432)), `other → db:5432 still blocked after ${signal}`);
      assert.ok(await reaches(d, 'api', ip.db!, 5432), `api → db:5432 still allowed after ${signal}`);
      assert.equal(nbctl(d, '--bare', '--columns=name', 'find', 'Port_Group', 'external_ids:arca-policy=db-kept'), groups, 'the same rows, not rebuilt');
    }
    assert.equal((await api(d, 'DELETE', `${P}/db-kept`)).status, 204);
    assert.ok(await reaches(d, 'other', ip.db!, 5432));
  });

  it('isolated backends of a VIP keep passing its health checks and reach themselves through it (hairpin)', async () => {
    const vnet = 'vip-ovn';
    await d.dockerOk(['network', 'create', '-d', 'ovn', '--subnet', '10.203.0.0/24', '-o', 'arca.endpoint_mode=vip', vnet]);
    for (const name of ['be1', 'be2']) {
      await d.dockerOk(['run', '-d', '--name', name, '--hostname', name, '--network', vnet, '--network-alias', 'svc', '--expose', '80', '--label', 'app=be', IMG, 'sh', '-c', `${serve(80)} && exec sleep 600`]);
    }
    await d.dockerOk(['run', '-d', '--name', 'fe', '--network', vnet, '--label', 'app=fe', IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'stranger', '--network', vnet, IMG, 'sleep', '600']);
    const doc = { network: vnet, select: { labels: { app: 'be' } }, ingress: [{ from: [{ labels: { app: 'fe' } }], ports: [{ proto: 'tcp', port: 80 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/be-in`, doc)).status, 201);
    // Two missed probes (2 s apart) would take a backend out: give them time to miss. OVN's
    // health checks come from ovn-controller itself and do not cross the ACLs: no rule needed.
    await new Promise((r) => setTimeout(r, 6000));
    const seen = new Set<string>();
    for (let i = 0; i < 12 && seen.size < 2; i++) {
      const r = await d.docker(['exec', 'fe', 'timeout', '2', 'wget', '-q', '-O', '-', 'http://svc/hostname']);
      assert.equal(r.code, 0, `fe → svc (VIP): ${r.stdout}${r.stderr}`);
      seen.add(r.stdout.trim());
    }
    assert.deepEqual([...seen].sort(), ['be1', 'be2'], 'both backends stay in the VIP');
    // A backend the rules let in reaches the VIP, itself behind it included (hairpin).
    const peers = { ...doc, ingress: [{ from: [{ labels: { app: 'fe' } }, { labels: { app: 'be' } }], ports: [{ proto: 'tcp', port: 80 }] }] };
    assert.equal((await api(d, 'PUT', `${P}/be-in`, peers)).status, 200);
    const self = new Set<string>();
    for (let i = 0; i < 12 && self.size < 2; i++) {
      const r = await d.docker(['exec', 'be1', 'timeout', '2', 'wget', '-q', '-O', '-', 'http://svc/hostname']);
      self.add(r.code === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`);
    }
    assert.deepEqual([...self].sort(), ['be1', 'be2'], 'be1 → svc reaches both backends, itself too');
    const blocked = await d.docker(['exec', 'stranger', 'timeout', '2', 'wget', '-q', '-O', '-', 'http://svc/hostname']);
    assert.notEqual(blocked.code, 0, 'a container the rule does not name is dropped at the backend, VIP or not');
    assert.equal((await api(d, 'DELETE', `${P}/be-in`)).status, 204);
    await d.dockerOk(['rm', '-f', 'be1', 'be2', 'fe', 'stranger']);
    await d.dockerOk(['network', 'rm', vnet]);
  });

  it('a policy selecting 100 containers is enforced when PUT answers', async () => {
    const n = 100;
    const names = Array.from({ length: n }, (_, i) => `bulk${i}`);
    for (let i = 0; i < n; i += 4) {
      await Promise.all(
        names.slice(i, i + 4).map((name) => d.dockerOk(['run', '-d', '--name', name, '--network', NET, '--label', 'app=bulk', IMG, 'sh', '-c', `${serve(80)} && exec sleep 600`])),
      );
    }
    const first = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, 'bulk0']);
    const last = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, `bulk${n - 1}`]);
    const doc = { network: NET, select: { labels: { app: 'bulk' } }, ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 80 }] }] };
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const put = await api(d, 'PUT', `${P}/bulk`, round % 2 ? { ...doc, ingress: [...doc.ingress, { from: [{ cidr: '192.0.2.0/24' }] }] } : doc);
      times.push(Math.round(performance.now() - t0));
      assert.ok(put.status === 201 || put.status === 200, JSON.stringify(put.body));
      assert.ok(!(await reaches(d, 'other', last, 80)), `other → bulk${n - 1} blocked at once (round ${round})`);
      assert.ok(await reaches(d, 'api', first, 80), `api → bulk0 allowed (round ${round})`);
    }
    const t0 = performance.now();
    assert.equal((await api(d, 'DELETE', `${P}/bulk`)).status, 204);
    times.push(Math.round(performance.now() - t0));
    process.stderr.write(`# ovn: PUT of a policy selecting ${n} containers, until enforced (ms): create ${times[0]}, replace ${times[1]}, ${times[2]}; DELETE ${times[3]}\n`);
    // The driver's own split of each apply (NB read, NB write, until the chassis installed it).
    const splits = readFileSync(d.logPath, 'utf8').split('\n').filter((l) => l.includes('policies enforced')).slice(-4);
    for (const l of splits) process.stderr.write(`#   ${l.slice(l.indexOf('{'))}\n`);
    assert.ok(await reaches(d, 'other', last, 80), 'reopened after DELETE');
  });
});
