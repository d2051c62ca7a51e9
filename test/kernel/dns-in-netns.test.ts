/**
 * The embedded DNS server answering inside a container's namespace: sockets bound to
 * 127.0.0.11:53 there by the native addon, served by the daemon's one server. Throwaway
 * namespaces stand for containers; clients run inside them (busybox nslookup for UDP, a node
 * one-liner for TCP), so nothing but the namespace's own loopback carries a packet.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { EmbeddedDns } from '../../src/network/embedded-dns.js';
import type { DnsSnapshot } from '../../src/network/dns/dns-snapshot.js';
import { DnsRcode, DnsType, decodeMessage, encodeMessage } from '../../src/network/dns/dns-codec.js';
import { loadNative } from '../../src/sys/native.js';
import { run } from '../../src/sys/runner.js';

const native = loadNative();
const skip = process.getuid?.() !== 0 ? 'needs root' : native.helpers ? false : `native addon not built: ${native.reason}`;

const snapshot = (withDb: boolean): DnsSnapshot => ({
  upstreams: [],
  networks: [
    {
      id: 'n1',
      name: 'front',
      internal: false,
      endpoints: [
        // `--dns 127.0.0.53`: a resolver on the container's own loopback, only reachable from inside.
        { containerId: 'web', names: ['web'], ipv4: '10.77.0.2', upstreams: ['127.0.0.53'] },
        ...(withDb ? [{ containerId: 'db', names: ['db', 'database'], ipv4: '10.77.0.3' }] : []),
      ],
    },
    // IPv6-only: no IPv4 anywhere, yet the container asks 127.0.0.11 on its loopback.
    { id: 'n6', name: 'six', internal: true, endpoints: [{ containerId: 'v6', names: ['v6'], ipv6: 'fd00:77::2' }, { containerId: 'web', names: ['web'], ipv6: 'fd00:77::3' }] },
  ],
});

function inNs(ns: string, argv: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
}

async function nslookup(ns: string, name: string, type = 'A'): Promise<{ code: number; out: string }> {
  const r = await run(inNs(ns, ['timeout', '5', 'busybox', 'nslookup', `-type=${type}`, name, '127.0.0.11']), { allowFailure: true });
  return { code: r.code ?? -1, out: r.stdout + r.stderr };
}

/** One query over TCP from inside `ns`, by a node client started there. */
async function tcpQuery(ns: string, name: string): Promise<ReturnType<typeof decodeMessage>> {
  const q = encodeMessage({
    header: { id: 0x4242, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
    questions: [{ name, type: DnsType.A, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  });
  const script = `
    const s = require('net').connect(53, '127.0.0.11');
    const q = Buffer.from(process.argv[1], 'hex');
    const f = Buffer.alloc(2); f.writeUInt16BE(q.length);
    s.write(Buffer.concat([f, q]));
    let got = Buffer.alloc(0);
    s.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) { process.stdout.write(got.subarray(2).toString('hex')); s.end(); } });
    setTimeout(() => process.exit(3), 4000).unref();`;
  const r = await run(inNs(ns, [process.execPath, '-e', script, q.toString('hex')]));
  return decodeMessage(Buffer.from(r.stdout.trim(), 'hex'));
}

/** A stand-in upstream inside `nsPath` at 127.0.0.53:53 (UDP and TCP): every A query gets 192.0.2.53. */
async function fakeUpstream(nsPath: string): Promise<{ close: () => Promise<void>; asked: string[] }> {
  const n = native.helpers!;
  const asked: string[] = [];
  const answer = (q: Buffer): Buffer => {
    const m = decodeMessage(q);
    asked.push(m.questions[0]!.name);
    return encodeMessage({
      ...m,
      header: { ...m.header, qr: true, ra: true },
      answers: [{ name: m.questions[0]!.name, type: DnsType.A, class: 1, ttl: 30, data: '192.0.2.53' }],
    });
  };
  const h = n.udpWatch(n.socketIn(nsPath, 'udp', '127.0.0.53', 53), (msg, address, port) => {
    n.udpSend(h, answer(msg), address, port);
  });
  const tcp = createServer((s) =>
    s.on('data', (d: Buffer) => {
      const out = answer(d.subarray(2, 2 + d.readUInt16BE(0)));
      const len = Buffer.alloc(2);
      len.writeUInt16BE(out.length);
      s.end(Buffer.concat([len, out]));
    }),
  );
  await new Promise<void>((res) => tcp.listen({ fd: n.socketIn(nsPath, 'tcp', '127.0.0.53', 53) }, res));
  return {
    asked,
    close: () => {
      n.udpClose(h);
      return new Promise<void>((res) => tcp.close(() => res()));
    },
  };
}

describe('embedded DNS inside a container namespace', { skip }, () => {
  const tag = `adn${randomBytes(3).toString('hex')}`;
  const WEB = `${tag}-web`;
  const V6 = `${tag}-v6`;
  const GHOST = `${tag}-ghost`;
  let dns: EmbeddedDns;
  let upstream: Awaited<ReturnType<typeof fakeUpstream>> | undefined;

  before(async () => {
    for (const ns of [WEB, V6, GHOST]) {
      await run(['ip', 'netns', 'add', ns]);
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    upstream = await fakeUpstream(`/run/netns/${WEB}`);
    dns = new EmbeddedDns(0, () => {}, native.helpers);
    assert.equal(dns.port, null, 'nothing listens on gateways');
    await dns.update(snapshot(true));
    assert.equal(await dns.serveIn('web', `/run/netns/${WEB}`), true);
    assert.equal(await dns.serveIn('v6', `/run/netns/${V6}`), true);
    assert.equal(await dns.serveIn('ghost', `/run/netns/${GHOST}`), true);
  });
  after(async () => {
    await dns?.close();
    await upstream?.close();
    for (const ns of [WEB, V6, GHOST]) await run(['ip', 'netns', 'delete', ns], { allowFailure: true });
  });

  it('answers over UDP at 127.0.0.11:53 with the names of the asker’s networks', async () => {
    const r = await nslookup(WEB, 'database');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Address:\s+10\.77\.0\.3/);
  });

  it('answers over TCP, the socket telling who asks', async () => {
    const m = await tcpQuery(WEB, 'db');
    assert.equal(m.header.id, 0x4242);
    assert.equal(m.header.rcode, DnsRcode.NOERROR);
    assert.deepEqual(
      m.answers.map((a) => a.data),
      ['10.77.0.3'],
    );
  });

  it('forwards a container’s own --dns servers from inside its namespace (UDP and TCP), as moby does', async () => {
    const r = await nslookup(WEB, 'outside.example');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Address:\s+192\.0\.2\.53/);
    const m = await tcpQuery(WEB, 'tcp.example');
    assert.deepEqual(
      m.answers.map((a) => a.data),
      ['192.0.2.53'],
    );
    assert.ok(upstream!.asked.includes('outside.example') && upstream!.asked.includes('tcp.example'), upstream!.asked.join());
  });

  it('serves a container whose only network is IPv6', async () => {
    const r = await nslookup(V6, 'web', 'AAAA');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /fd00:77::3/);
    // `db` is not on the asker's network: not resolved (internal network: no forwarding either).
    assert.doesNotMatch((await nslookup(V6, 'db')).out, /10\.77\.0\.3/);
  });

  it('refuses a namespace whose container is not in the snapshot', async () => {
    const r = await nslookup(GHOST, 'web');
    assert.notEqual(r.code, 0);
    assert.match(r.out, /REFUSED/i);
  });

  it('follows snapshot swaps at once', async () => {
    await dns.update(snapshot(false));
    assert.doesNotMatch((await nslookup(WEB, 'db')).out, /10\.77\.0\.3/);
    await dns.update(snapshot(true));
    assert.match((await nslookup(WEB, 'db')).out, /10\.77\.0\.3/);
  });

  it('closes its sockets in the namespace when told to stop (and can serve it again)', async () => {
    const listening = async (): Promise<string> => (await run(inNs(WEB, ['ss', '-Hlnut', 'src', '127.0.0.11']))).stdout.trim();
    assert.equal((await listening()).split('\n').length, 2, 'UDP and TCP on 127.0.0.11:53');
    await dns.stopServing('web');
    assert.equal(await listening(), '');
    // The upstream sockets it opened in there went too: only the stand-in upstream's remain.
    const left = (await run(inNs(WEB, ['ss', '-Hanut']))).stdout.trim().split('\n').filter((l) => l && !/TIME-WAIT/.test(l) && !/127\.0\.0\.53:53\b/.test(l));
    assert.deepEqual(left, []);
    assert.equal(await dns.serveIn('web', `/run/netns/${WEB}`), true);
    assert.match((await nslookup(WEB, 'web')).out, /10\.77\.0\.2/);
  });
});
