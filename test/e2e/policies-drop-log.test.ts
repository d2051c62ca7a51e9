/**
 * `arca daemon --log-policy-drops`: a connection a policy drops shows up in the daemon log once,
 * naming both containers and the policy isolating the one that refused it. On `bridge` the
 * daemon's firewall records it; on `wireguard` the hidden namespace of the refusing endpoint does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { skipWithoutWireguardGo } from './wireguard-support.js';

function put(d: TestDaemon, path: string, body: unknown): Promise<number> {
  const payload = JSON.stringify(body);
  return new Promise((res, rej) => {
    const req = request(
      { socketPath: d.socket, path, method: 'PUT', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } },
      (r) => {
        r.resume();
        r.on('end', () => res(r.statusCode ?? 0));
      },
    );
    req.on('error', rej);
    req.end(payload);
  });
}

async function until(what: string, cond: () => boolean, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

for (const driver of ['bridge', 'wireguard'] as const) describe(`policy drops in the daemon log (${driver})`, { skip: driver === 'wireguard' ? skipWithoutWireguardGo : false }, () => {
  let d: TestDaemon;
  const ip: Record<string, string> = {};

  before(async () => {
    d = await startDaemon({ daemonArgs: ['--log-policy-drops'] });
    await d.dockerOk(['network', 'create', '-d', driver, 'pdrop']);
    await d.dockerOk(['run', '-d', '--name', 'db', '--network', 'pdrop', TEST_IMAGE, 'sh', '-c', 'httpd -p 5432 -h /etc && exec sleep 600']);
    await d.dockerOk(['run', '-d', '--name', 'intruder', '--network', 'pdrop', TEST_IMAGE, 'sleep', '600']);
    for (const c of ['db', 'intruder']) ip[c] = await d.dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "pdrop").IPAddress}}', c]);
  });

  after(async () => {
    await d?.cleanup();
  });

  it('logs a dropped connection once, with both containers and the isolating policy', async () => {
    const status = await put(d, '/arca/v1/policies/db-only-api', { network: 'pdrop', select: { names: ['db'] }, ingress: [{ from: [{ names: ['api'] }] }] });
    assert.equal(status, 201);
    const r = await d.docker(['exec', 'intruder', 'timeout', '2', 'wget', '-q', '-O', '-', `http://${ip.db}:5432/hostname`]);
    assert.notEqual(r.code, 0, 'the policy blocks intruder → db');
    const line = new RegExp(`policy drop: intruder \\(${ip.intruder!.replace(/\./g, '\\.')}\\) -> db \\(${ip.db!.replace(/\./g, '\\.')}\\) 5432/tcp \\(ingress of db`);
    const matching = (): string[] => readFileSync(d.logPath, 'utf8').split('\n').filter((l) => line.test(l));
    await until('the drop in the daemon log', () => matching().length > 0);
    assert.match(matching()[0]!, /"policies":\["db-only-api"\]/);
    // The SYN was retransmitted while wget waited: still one line for the flow.
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(matching().length, 1, matching().join('\n'));
  });
});
