/**
 * Egress allowlists end to end on `bridge`, with the real docker CLI and a daemon in a throwaway
 * host namespace whose default route leads to an "outside" namespace the test owns:
 *
 *   outside: 198.18.0.2 (fake upstream DNS on :53, answering every A question with 198.18.50.2)
 *            198.18.50.1, 198.18.50.2 on lo (probe servers on TCP 8080 and 8081; a second fake
 *            DNS on 198.18.50.1:53, the "other server")
 *
 * The deny network allows 198.18.50.1:8080/tcp, the container's --dns server 198.18.0.2:53/udp
 * (the embedded DNS forwards a container's --dns queries from the container's namespace, so they
 * cross the allowlist like any packet) and *.allowed.test:8081/tcp.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUTSIDE_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { OutsideServices, tcpFrom } from './outside-services.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const IMG = TEST_IMAGE;
const skip = process.getuid?.() !== 0 ? 'needs root' : false;

describe('egress allowlist on bridge', { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const outside = new OutsideServices();


  /** What the server at host:port says to the container (`o <peer>`), or '' when nothing came back. */
  const tcp = (container: string, host: string, port: number): Promise<string> => tcpFrom(d, container, host, port);

  before(async () => {
    d = await startDaemon({ loadTestImage: true, outside: true });
    await outside.start(d, [OUTSIDE_ADDR, '198.18.50.1']);
    await d.dockerOk([
      'network', 'create',
      '-o', 'arca.egress=deny',
      '-o', `arca.egress.allow=198.18.50.1:8080/tcp,${OUTSIDE_ADDR}:53/udp,*.allowed.test:8081/tcp`,
      'eg',
    ]);
    await d.dockerOk(['run', '-d', '--name', 'boxed', '--network', 'eg', '--dns', OUTSIDE_ADDR, IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'open', '--dns', OUTSIDE_ADDR, IMG, 'sleep', '600']);
  });

  after(async () => {
    outside.stop();
    await d?.cleanup();
  });

  it('refuses bad allowlists with a 400 naming the entry, and creates nothing', async () => {
    const bad: Array<[string[], RegExp]> = [
      [['-o', 'arca.egress=deny', '-o', 'arca.egress.allow=10.0.0.0/8,a.*.b.com'], /"a\.\*\.b\.com": a wildcard/],
      [['-o', 'arca.egress=deny', '-o', 'arca.egress.allow=10.0.0.0/8:70000'], /"10\.0\.0\.0\/8:70000": port 70000 is out of range/],
      [['-o', 'arca.egress=deny', '-o', 'arca.egress.strategy=fast'], /arca\.egress\.strategy: "fast"/],
      [['-o', 'arca.egress.allow=10.0.0.0/8'], /needs arca\.egress=deny/],
    ];
    for (const [opts, re] of bad) {
      const r = await d.docker(['network', 'create', ...opts, 'badnet']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, re);
    }
    assert.equal((await d.docker(['network', 'inspect', 'badnet'])).code, 1);
  });

  it('shows the options in inspect', async () => {
    const opts = JSON.parse(await d.dockerOk(['network', 'inspect', '-f', '{{json .Options}}', 'eg'])) as Record<string, string>;
    assert.equal(opts['arca.egress'], 'deny');
    assert.match(opts['arca.egress.allow']!, /\*\.allowed\.test:8081\/tcp/);
  });

  it('reaches an allowed address and port outside, not another port or address', async () => {
    assert.match(await tcp('boxed', '198.18.50.1', 8080), /^o /);
    assert.equal(await tcp('boxed', '198.18.50.1', 8081), '');
    assert.equal(await tcp('boxed', '198.18.50.2', 8080), '');
    // The same from a container on an ordinary network: the outside is reachable there.
    assert.match(await tcp('open', '198.18.50.2', 8080), /^o /);
  });

  it('opens a wildcard name only once the container resolved it, on its port', async () => {
    assert.equal(await tcp('boxed', '198.18.50.2', 8081), '');
    const r = await d.docker(['exec', 'boxed', 'nslookup', 'api.allowed.test']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /198\.18\.50\.2/);
    assert.match(await tcp('boxed', '198.18.50.2', 8081), /^o /);
    assert.equal(await tcp('boxed', '198.18.50.2', 8080), '');
    const view = JSON.parse(await runArca(['network', 'egress', 'eg', '--format', 'json'])) as {
      Allow: Array<{ Entry: string; Addresses?: Array<{ Address: string; ExpiresInSeconds: number }> }>;
      Dropped: { Packets: number };
    };
    const wild = view.Allow.find((a) => a.Entry === '*.allowed.test:8081/tcp')!;
    assert.equal(wild.Addresses?.[0]?.Address, '198.18.50.2');
    assert.ok(wild.Addresses![0]!.ExpiresInSeconds >= 20);
    assert.ok(view.Dropped.Packets > 0);
    // A name the list does not cover resolves, but opens nothing.
    await d.docker(['exec', 'boxed', 'nslookup', 'other.example']);
    const after = JSON.parse(await runArca(['network', 'egress', 'eg', '--format', 'json'])) as { Allow: Array<{ Addresses?: unknown[] }> };
    assert.equal(after.Allow.filter((a) => a.Addresses?.length).length, 1);
  });

  it('blocks another DNS server', async () => {
    const r = await d.docker(['exec', 'boxed', 'timeout', '5', 'nslookup', 'api.allowed.test', '198.18.50.1']);
    assert.notEqual(r.code, 0, r.stdout);
    const ok = await d.docker(['exec', 'open', 'timeout', '5', 'nslookup', 'api.allowed.test', '198.18.50.1']);
    assert.equal(ok.code, 0, 'the other server answers an ordinary network: ' + ok.stdout + ok.stderr);
    const view = JSON.parse(await runArca(['network', 'egress', 'eg', '--format', 'json'])) as { DroppedDns: { Packets: number } };
    assert.ok(view.DroppedDns.Packets > 0);
  });

  async function runArca(args: string[]): Promise<string> {
    const main = join(HERE, '..', '..', 'src', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [main, '-H', `unix://${d.socket}`, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }
});
