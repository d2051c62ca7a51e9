/**
 * Network policies next to a compose project (issue 10, "Compose"): the compose file carries its
 * policies under `x-arca-policies` (docker-compose 1.29 ignores `x-` keys), `arca policy apply -f
 * docker-compose.yml -p PROJECT` maps `network: backend` to the project's network and `service:`
 * to compose's labels. Probes from inside the services prove that api reaches db:5432 and nothing
 * else reaches db, that `down` + `up` keeps it so (the policy names the network, not its id), and
 * that removing the policy opens db again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPOSE, exec, skipWithoutCompose, type Run } from './docker-clients.js';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { arca, arcaOk, policyApi, probeFrom } from './policies-support.js';

const PROJECT = 'polc';

const COMPOSE_FILE = `version: "2.4"
services:
  api:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "nc -ll -p 8080 -e echo ok & exec sleep 100000"]
    networks: [backend]
  db:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "nc -ll -p 5432 -e echo ok & nc -ll -p 8080 -e echo ok & exec sleep 100000"]
    networks: [backend]
  web:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "nc -ll -p 8080 -e echo ok & exec sleep 100000"]
    networks: [backend]
networks:
  backend: {}
x-arca-policies:
  - name: db-from-api
    network: backend
    select: {service: db}
    ingress:
      - from: [{service: api}]
        ports: [{proto: tcp, port: 5432}]
`;

describe('network policies in a compose project', { skip: skipWithoutCompose }, () => {
  let d: TestDaemon;
  let dir: string;
  const compose = (...args: string[]): Promise<Run> => exec(COMPOSE, ['-p', PROJECT, ...args], d.env, dir, 120_000);
  const container = (service: string): string => `${PROJECT}_${service}_1`;

  /** What each probe reached, as `from → to:port`. */
  async function reach(): Promise<Record<string, boolean>> {
    const targets = { api: ['db:5432', 'db:8080', 'web:8080'], web: ['db:5432', 'db:8080', 'api:8080'], db: ['api:8080', 'web:8080'] };
    const out: Record<string, boolean> = {};
    // Service names go through the embedded DNS, which policies never block.
    await Promise.all(
      Object.entries(targets).map(async ([from, list]) => {
        const res = await probeFrom(
          d,
          container(from),
          list.map((t) => ({ addr: t.split(':')[0]!, proto: 'tcp' as const, port: Number(t.split(':')[1]) })),
        );
        for (const t of list) out[`${from} → ${t}`] = res.get(`${t.split(':')[0]} tcp/${t.split(':')[1]}`)!;
      }),
    );
    return out;
  }

  const open = {
    'api → db:5432': true,
    'api → db:8080': true,
    'api → web:8080': true,
    'web → db:5432': true,
    'web → db:8080': true,
    'web → api:8080': true,
    'db → api:8080': true,
    'db → web:8080': true,
  };
  const governed = { ...open, 'api → db:8080': false, 'web → db:5432': false, 'web → db:8080': false };

  async function upAndReady(): Promise<void> {
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.stderr);
    for (const s of ['api', 'db', 'web']) {
      for (let i = 0; ; i++) {
        if ((await d.docker(['exec', container(s), 'sh', '-c', 'nc 127.0.0.1 8080 </dev/null | grep -q ok'])).code === 0) break;
        if (i > 100) throw new Error(`${s} does not serve 8080`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  before(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'arca-compose-policies-'));
    writeFileSync(join(dir, 'docker-compose.yml'), COMPOSE_FILE);
  });

  after(async () => {
    if (d && dir) await compose('down').catch(() => undefined);
    await d?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('compose ignores x-arca-policies; without the policy every service reaches every other', async () => {
    await upAndReady();
    assert.deepEqual(await reach(), open);
  });

  it('arca policy apply -f docker-compose.yml -p PROJECT: api reaches db:5432, nothing else reaches db', async () => {
    const out = await arcaOk(d, ['policy', 'apply', '-f', 'docker-compose.yml', '-p', PROJECT], { cwd: dir });
    assert.match(out, /db-from-api/);
    const stored = await policyApi(d, 'GET', 'db-from-api');
    assert.equal(stored.status, 200, stored.body);
    assert.equal((JSON.parse(stored.body) as { network: string }).network, `${PROJECT}_backend`, 'network: backend names the project network');
    assert.deepEqual(await reach(), governed);
  });

  it('arca policy check explains both verdicts on the model', async () => {
    const allowed = await arca(d, ['policy', 'check', '--from', container('api'), '--to', container('db'), '--port', '5432/tcp']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /allowed/i);
    assert.match(allowed.stdout, /db-from-api/);
    const denied = await arca(d, ['policy', 'check', '--from', container('web'), '--to', container('db'), '--port', '5432/tcp']);
    assert.match(denied.stdout + denied.stderr, /denied/i);
    assert.match(denied.stdout + denied.stderr, /db-from-api/);
  });

  it('down and up again: the policy names the network, so it governs the new one', async () => {
    const down = await compose('down');
    assert.equal(down.code, 0, down.stderr);
    await upAndReady();
    assert.deepEqual(await reach(), governed);
  });

  it('arca policy rm opens db again', async () => {
    await arcaOk(d, ['policy', 'rm', 'db-from-api']);
    assert.equal((await policyApi(d, 'GET', 'db-from-api')).status, 404);
    assert.deepEqual(await reach(), open);
  });
});
