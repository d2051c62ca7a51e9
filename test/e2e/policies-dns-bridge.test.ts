/**
 * Policies' `dns` peers end to end on `bridge`, with the real docker CLI and a daemon in a
 * throwaway host namespace whose default route leads to an "outside" namespace the test owns:
 *
 *   outside: 198.18.0.2 (fake upstream DNS on :53, answering every A question with 198.18.50.2)
 *            198.18.50.1, 198.18.50.2 on lo (probe servers on TCP 8080 and 8081)
 *
 * The policy selects `sel` (label app=sel) and allows it api.allowed.test on tcp/8081 and its
 * --dns server on udp/53 (the embedded DNS forwards a container's --dns queries from the
 * container's namespace, so they are its own egress); `free` on the same network is not selected.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUTSIDE_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { apiJson } from './policies-support.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROBE = join(HERE, '..', 'kernel', 'net-probe.js');
const FAKE_DNS = join(HERE, 'fake-dns-upstream.js');
const IMG = TEST_IMAGE;
const skip = process.getuid?.() !== 0 ? 'needs root' : false;
const P = '/arca/v1/policies';

describe('policy dns peers on bridge', { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const children: ChildProcess[] = [];

  function startIn(ns: string, argv: string[]): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return new Promise((res, rej) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('ready')) res();
      });
      child.once('exit', (code) => rej(new Error(`${argv.join(' ')} exited (${code})`)));
    });
  }

  /** What the server at host:port says to the container (`o <peer>`), or '' when nothing came back. */
  async function tcp(container: string, host: string, port: number): Promise<string> {
    const r = await d.docker(['exec', container, 'timeout', '3', 'nc', host, String(port)], { input: '' });
    return r.stdout.trim();
  }

  /** The elements of the `dns` peer sets in the host ruleset. */
  function learntInKernel(): string {
    const r = spawnSync('ip', ['netns', 'exec', d.hostNs, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
    const sets = r.stdout.split(/\n(?=\tset )/).filter((s) => /\tset pol_d_/.test(s));
    return sets.join('\n');
  }

  const policy = {
    name: 'api-out',
    network: 'pd',
    select: { labels: { app: 'sel' } },
    egress: [
      { to: [{ dns: 'api.allowed.test' }], ports: [{ port: 8081 }] },
      { to: [{ cidr: `${OUTSIDE_ADDR}/32` }], ports: [{ proto: 'udp', port: 53 }] },
    ],
  };

  before(async () => {
    d = await startDaemon({ loadTestImage: true, outside: true });
    const o = d.outsideNs!;
    for (const a of ['198.18.50.1/32', '198.18.50.2/32']) spawnSync('ip', ['-n', o, 'addr', 'add', a, 'dev', 'lo']);
    await Promise.all([
      startIn(o, [process.execPath, PROBE, 'serve', 'o', '8080,8081', '-']),
      startIn(o, [process.execPath, FAKE_DNS, OUTSIDE_ADDR, '53', '198.18.50.2']),
    ]);
    await d.dockerOk(['network', 'create', 'pd']);
    await d.dockerOk(['run', '-d', '--name', 'sel', '--label', 'app=sel', '--network', 'pd', '--dns', OUTSIDE_ADDR, IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'free', '--network', 'pd', '--dns', OUTSIDE_ADDR, IMG, 'sleep', '600']);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await d?.cleanup();
  });

  it('refuses a dns peer in "from" and a bad wildcard with a 400 naming the field, storing nothing', async () => {
    const inFrom = await apiJson(d, 'PUT', `${P}/bad`, { name: 'bad', network: 'pd', ingress: [{ from: [{ dns: 'api.allowed.test' }] }] });
    assert.equal(inFrom.status, 400);
    assert.match(inFrom.body.message, /ingress\[0\]\.from\[0\]\.dns: a dns peer is a destination/);
    const wild = await apiJson(d, 'PUT', `${P}/bad`, { name: 'bad', network: 'pd', egress: [{ to: [{ dns: 'a.*.allowed.test' }] }] });
    assert.equal(wild.status, 400);
    assert.match(wild.body.message, /egress\[0\]\.to\[0\]\.dns: "a\.\*\.allowed\.test": a wildcard is allowed only as the whole first label/);
    assert.equal((await apiJson(d, 'GET', `${P}/bad`)).status, 404);
  });

  it('a selected container reaches the name\'s address on its port only once it resolved it', async () => {
    assert.equal((await apiJson(d, 'PUT', `${P}/api-out`, policy)).status, 201);
    assert.equal(await tcp('sel', '198.18.50.2', 8081), '');
    const r = await d.docker(['exec', 'sel', 'nslookup', 'api.allowed.test']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /198\.18\.50\.2/);
    assert.match(await tcp('sel', '198.18.50.2', 8081), /^o /);
    // Not another port of it, not another address.
    assert.equal(await tcp('sel', '198.18.50.2', 8080), '');
    assert.equal(await tcp('sel', '198.18.50.1', 8081), '');
    assert.match(learntInKernel(), /198\.18\.50\.2 timeout/);
  });

  it('a container the policy does not select is governed as before', async () => {
    assert.match(await tcp('free', '198.18.50.1', 8081), /^o /);
    assert.match(await tcp('free', '198.18.50.2', 8080), /^o /);
  });

  it('a restarted daemon keeps what was learnt', async () => {
    await d.restart();
    // Without resolving again.
    let out = '';
    for (let i = 0; i < 20 && !out; i++) {
      out = await tcp('sel', '198.18.50.2', 8081);
      if (!out) await new Promise((res) => setTimeout(res, 250));
    }
    assert.match(out, /^o /);
    assert.match(learntInKernel(), /198\.18\.50\.2 timeout/);
    assert.equal(await tcp('sel', '198.18.50.1', 8081), '');
  });
});
