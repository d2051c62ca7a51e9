import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { DnsServer } from '../../src/network/dns/dns-server.js';
import { DnsRcode, DnsType, decodeMessage, encodeMessage, reverseName, type DnsMessage } from '../../src/network/dns/dns-codec.js';
import type { DnsSnapshot } from '../../src/network/dns/dns-snapshot.js';
import { benchDns } from '../../bench/dns-bench.js';

// Clients are told apart by source address: every 127.0.0.0/8 address is local on Linux, so
// each test container "is" a loopback address its queries are sent from.
const WEB = '127.0.1.1';
const WEB2 = '127.0.1.2';
const DB = '127.0.2.1';
const VAULT = '127.0.3.1';
const STRANGER = '127.0.9.9';

function snapshot(upstreams: string[], opts: { withoutWeb?: boolean } = {}): DnsSnapshot {
  return {
    upstreams,
    networks: [
      {
        id: 'na',
        name: 'front',
        internal: false,
        endpoints: [
          ...(opts.withoutWeb ? [] : [{ containerId: 'web', names: ['web', 'svc'], ipv4: WEB, ipv6: 'fd00::1' }]),
          { containerId: 'web2', names: ['web2', 'svc'], ipv4: WEB2 },
          ...Array.from({ length: 60 }, (_, i) => ({ containerId: `m${i}`, names: [`m${i}`, 'many'], ipv4: `10.1.0.${i + 1}` })),
        ],
      },
      { id: 'nb', name: 'back', internal: false, endpoints: [{ containerId: 'db', names: ['db'], ipv4: DB }] },
      { id: 'nc', name: 'secret', internal: true, endpoints: [{ containerId: 'vault', names: ['vault'], ipv4: VAULT }] },
    ],
  };
}

let nextId = 1;
function query(name: string, type: number = DnsType.A, edns?: number): Buffer {
  const m: DnsMessage = {
    header: { id: nextId++ & 0xffff, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
    questions: [{ name, type, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  };
  if (edns) m.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  return encodeMessage(m);
}

/** Sends one UDP message from `from` and waits for the answer (or undefined after `timeoutMs`). */
async function udpExchange(port: number, from: string, msg: Buffer, timeoutMs = 2000): Promise<Buffer | undefined> {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, from, res));
  try {
    const got = new Promise<Buffer | undefined>((res) => {
      const t = setTimeout(() => res(undefined), timeoutMs);
      s.on('message', (m) => {
        clearTimeout(t);
        res(m);
      });
    });
    s.send(msg, port, '127.0.0.1');
    return await got;
  } finally {
    s.close();
  }
}

async function ask(port: number, from: string, name: string, type: number = DnsType.A, edns?: number): Promise<DnsMessage> {
  const q = query(name, type, edns);
  const r = await udpExchange(port, from, q);
  assert.ok(r, `no answer to ${name} from ${from}`);
  const m = decodeMessage(r);
  assert.equal(m.header.id, q.readUInt16BE(0), 'answer carries the query id');
  return m;
}

function tcpConnect(port: number, from: string): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => res(s));
    s.once('error', rej);
  });
}

/** Reads `n` framed messages from a TCP socket. */
function readFrames(s: Socket, n: number): Promise<Buffer[]> {
  return new Promise((res, rej) => {
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= n) {
        s.off('data', onData);
        res(out);
      }
    };
    s.on('data', onData);
    s.once('close', () => (out.length >= n ? undefined : rej(new Error(`connection closed after ${out.length} of ${n} answers`))));
  });
}

const framed = (m: Buffer): Buffer => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);

type Mode = 'answer' | 'silent' | 'servfail' | 'refused';

/** A fake upstream resolver on 127.0.0.1 (UDP, and TCP on the same port). */
class FakeUpstream {
  seen: DnsMessage[] = [];
  private constructor(
    readonly udp: UdpSocket,
    readonly tcp: Server,
    public mode: Mode,
  ) {}

  static async start(mode: Mode): Promise<FakeUpstream> {
    const udp = createSocket('udp4');
    await new Promise<void>((res) => udp.bind(0, '127.0.0.1', res));
    const tcp = createServer();
    await new Promise<void>((res) => tcp.listen(udp.address().port, '127.0.0.1', res));
    const f = new FakeUpstream(udp, tcp, mode);
    udp.on('message', (m, r) => {
      const out = f.respond(m, false);
      if (out) udp.send(out, r.port, r.address);
    });
    tcp.on('connection', (s) => {
      s.on('error', () => {});
      void readFrames(s, 1).then(([m]) => {
        const out = f.respond(m!, true);
        if (out) s.end(framed(out));
      }, () => {});
    });
    return f;
  }

  get address(): string {
    return `127.0.0.1:${this.udp.address().port}`;
  }

  private respond(raw: Buffer, tcp: boolean): Buffer | undefined {
    const q = decodeMessage(raw);
    this.seen.push(q);
    if (this.mode === 'silent') return undefined;
    const name = q.questions[0]!.name;
    const rcode = this.mode === 'servfail' ? DnsRcode.SERVFAIL : this.mode === 'refused' ? DnsRcode.REFUSED : name.startsWith('nx.') ? DnsRcode.NXDOMAIN : 0;
    const count = name.startsWith('big.') ? 100 : 1;
    const answers = rcode === 0 ? Array.from({ length: count }, (_, i) => ({ name, type: DnsType.A, class: 1, ttl: 30, data: `192.0.2.${i + 1}` })) : [];
    const out = encodeMessage({ ...q, header: { ...q.header, qr: true, ra: true, rcode }, answers, edns: undefined });
    void tcp;
    return out;
  }

  close(): void {
    this.udp.close();
    this.tcp.close();
  }
}

describe('DNS server', () => {
  let good: FakeUpstream;
  let silent: FakeUpstream;
  let failing: FakeUpstream;
  let refusing: FakeUpstream;
  let server: DnsServer;

  before(async () => {
    [good, silent, failing, refusing] = await Promise.all([FakeUpstream.start('answer'), FakeUpstream.start('silent'), FakeUpstream.start('servfail'), FakeUpstream.start('refused')]);
    server = await DnsServer.start({ address: '127.0.0.1', port: 0, snapshot: snapshot([good.address]), upstreamTimeoutMs: 300, tcpIdleTimeoutMs: 500 });
  });
  after(async () => {
    await server.close();
    for (const u of [good, silent, failing, refusing]) u.close();
  });

  it('binds UDP and TCP on one reported port', async () => {
    assert.ok(server.port > 0);
    const s = await tcpConnect(server.port, WEB);
    s.destroy();
  });

  it('answers A, AAAA and PTR locally', async () => {
    const a = await ask(server.port, WEB2, 'web');
    assert.deepEqual(a.answers.map((r) => [r.type, r.ttl, r.data]), [[DnsType.A, 600, WEB]]);
    assert.deepEqual((await ask(server.port, WEB2, 'WEB.front.', DnsType.AAAA)).answers.map((r) => r.data), ['fd00::1']);
    const ptr = await ask(server.port, WEB2, reverseName(WEB), DnsType.PTR);
    assert.deepEqual(ptr.answers.map((r) => r.data), ['web.front', 'web']);
    assert.equal(good.seen.length, 0, 'nothing was forwarded');
  });

  it('scopes names to shared networks', async () => {
    const fromWeb = await ask(server.port, WEB, 'db');
    // Not ours on front: forwarded, and the fake upstream answers with its own address.
    assert.deepEqual(fromWeb.answers.map((r) => r.data), ['192.0.2.1']);
    assert.deepEqual((await ask(server.port, DB, 'db')).answers.map((r) => r.data), [DB]);
  });

  it('returns all addresses of an alias, in varying order', async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const got = (await ask(server.port, WEB, 'svc')).answers.map((r) => r.data as string);
      assert.deepEqual([...got].sort(), [WEB, WEB2].sort());
      orders.add(got.join());
    }
    assert.equal(orders.size, 2);
  });

  it('tells NODATA from NXDOMAIN', async () => {
    const nodata = await ask(server.port, WEB, 'web2', DnsType.AAAA);
    assert.equal(nodata.header.rcode, DnsRcode.NOERROR);
    assert.equal(nodata.answers.length, 0);
    const nx = await ask(server.port, WEB, 'nx.example');
    assert.equal(nx.header.rcode, DnsRcode.NXDOMAIN);
  });

  it('refuses clients that are not containers in the snapshot', async () => {
    assert.equal((await ask(server.port, STRANGER, 'web')).header.rcode, DnsRcode.REFUSED);
  });

  it('forwards with remapped ids; concurrent forwards never mix', async () => {
    good.seen = [];
    const names = Array.from({ length: 40 }, (_, i) => `host${i}.example`);
    const results = await Promise.all(names.map((n) => ask(server.port, WEB, n)));
    results.forEach((r, i) => {
      assert.equal(r.questions[0]!.name, names[i]);
      assert.equal(r.answers[0]!.name, names[i]);
    });
    assert.equal(good.seen.length, 40);
  });

  it('fails over on timeout, SERVFAIL and REFUSED, then answers SERVFAIL when all fail', async () => {
    server.update(snapshot([silent.address, failing.address, good.address]));
    good.seen = [];
    const t0 = Date.now();
    const ok = await ask(server.port, WEB, 'www.example');
    assert.deepEqual(ok.answers.map((r) => r.data), ['192.0.2.1']);
    assert.ok(Date.now() - t0 >= 250, 'waited for the silent upstream');
    assert.equal(good.seen.length, 1);

    server.update(snapshot([refusing.address, good.address]));
    assert.equal((await ask(server.port, WEB, 'www2.example')).header.rcode, DnsRcode.NOERROR);

    server.update(snapshot([failing.address, silent.address, refusing.address, good.address]));
    good.seen = [];
    const fail = await ask(server.port, WEB, 'www3.example');
    assert.equal(fail.header.rcode, DnsRcode.SERVFAIL);
    assert.equal(good.seen.length, 0, 'a fourth upstream is never tried');
    server.update(snapshot([good.address]));
  });

  it('does not forward for a container only on internal networks', async () => {
    good.seen = [];
    const r = await ask(server.port, VAULT, 'example.com');
    assert.equal(r.header.rcode, DnsRcode.SERVFAIL);
    assert.equal(good.seen.length, 0);
    assert.deepEqual((await ask(server.port, VAULT, 'vault')).answers.map((a) => a.data), [VAULT]);
  });

  it('truncates UDP answers to 512 bytes or the EDNS size, and answers in full over TCP', async () => {
    const q = query('many');
    const udp = decodeMessage((await udpExchange(server.port, WEB, q))!);
    assert.equal(udp.header.tc, true);
    assert.ok(udp.answers.length < 60);
    const withEdns = await udpExchange(server.port, WEB, query('many', DnsType.A, 4096));
    assert.equal(decodeMessage(withEdns!).answers.length, 60);
    assert.ok(withEdns!.length > 512);

    const s = await tcpConnect(server.port, WEB);
    const frames = readFrames(s, 1);
    s.write(framed(q));
    const full = decodeMessage((await frames)[0]!);
    s.destroy();
    assert.equal(full.header.tc, false);
    assert.equal(full.answers.length, 60);

    // A forwarded answer too big for UDP comes back as a TC header; TCP forwards get it whole.
    const big = decodeMessage((await udpExchange(server.port, WEB, query('big.example')))!);
    assert.equal(big.header.tc, true);
    assert.equal(big.answers.length, 0);
    const s2 = await tcpConnect(server.port, WEB);
    const f2 = readFrames(s2, 1);
    s2.write(framed(query('big.example')));
    assert.equal(decodeMessage((await f2)[0]!).answers.length, 100);
    s2.destroy();
  });

  it('serves several TCP queries per connection, split across writes, and closes idle ones', async () => {
    const s = await tcpConnect(server.port, WEB);
    const qs = [query('web'), query('web2'), query('db.example')];
    const answers = readFrames(s, 3);
    const all = Buffer.concat(qs.map(framed));
    // One byte at a time for the first message, the rest in one go.
    for (let i = 0; i < 5; i++) s.write(all.subarray(i, i + 1));
    s.write(all.subarray(5));
    const got = (await answers).map((b) => decodeMessage(b));
    const byId = new Map(got.map((m) => [m.header.id, m]));
    assert.deepEqual(byId.get(qs[0]!.readUInt16BE(0))!.answers.map((a) => a.data), [WEB]);
    assert.deepEqual(byId.get(qs[1]!.readUInt16BE(0))!.answers.map((a) => a.data), [WEB2]);
    assert.deepEqual(byId.get(qs[2]!.readUInt16BE(0))!.answers.map((a) => a.data), ['192.0.2.1']);
    const t0 = Date.now();
    await once(s, 'close');
    assert.ok(Date.now() - t0 < 2000, 'idle connection closed by the server');
  });

  it('ignores malformed packets without crashing', async () => {
    const garbage = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      Buffer.from('0001000000010000000000000' + '3', 'hex'),
      Buffer.from('00010000000100000000000003616263', 'hex'), // name runs off the end
      Buffer.from('000100000001000000000000c00c00010001', 'hex'), // pointer loop
      (() => {
        const r = query('web');
        r[2] = r[2]! | 0x80; // a response: never answered
        return r;
      })(),
      Buffer.alloc(3000, 0xff),
    ];
    for (const g of garbage) assert.equal(await udpExchange(server.port, WEB, g, 150), undefined);
    // TCP: a bad frame closes that connection only.
    const s = await tcpConnect(server.port, WEB);
    s.write(framed(Buffer.from('000100000001000000000000c00c00010001', 'hex')));
    await once(s, 'close');
    const s0 = await tcpConnect(server.port, WEB);
    s0.write(Buffer.from([0, 0]));
    await once(s0, 'close');
    assert.deepEqual((await ask(server.port, WEB, 'web2')).answers.map((a) => a.data), [WEB2]);
  });

  it('swaps snapshots at once: a removed container stops resolving and asking', async () => {
    assert.equal((await ask(server.port, WEB2, 'web')).answers.length, 1);
    server.update(snapshot([good.address], { withoutWeb: true }));
    good.seen = [];
    const gone = await ask(server.port, WEB2, 'web');
    assert.equal(gone.answers.length === 1 && gone.answers[0]!.data === WEB, false);
    assert.equal(good.seen.length, 1, 'now forwarded, not answered locally');
    assert.deepEqual((await ask(server.port, WEB2, 'svc')).answers.map((a) => a.data), [WEB2]);
    assert.equal((await ask(server.port, WEB, 'web2')).header.rcode, DnsRcode.REFUSED, 'its old address is a stranger');
    server.update(snapshot([good.address]));
    assert.deepEqual((await ask(server.port, WEB2, 'web')).answers.map((a) => a.data), [WEB]);
  });

  it('bench: measures queries per second against the server', async () => {
    const r = await benchDns('127.0.0.1', server.port, 300, 16, { name: 'web', sourceAddress: WEB2 });
    assert.ok(r.qps > 100, `qps ${r.qps}`);
    assert.equal(r.errors, 0);
  });
});

describe('DNS server: per-container upstreams (--dns)', () => {
  it("forwards a container's queries to its own --dns upstream, others' to the host's", async () => {
    const [hostUp, ownUp] = await Promise.all([FakeUpstream.start('answer'), FakeUpstream.start('answer')]);
    const snap = (): DnsSnapshot => {
      const s = snapshot([hostUp.address]);
      return {
        ...s,
        networks: s.networks.map((n) => ({
          ...n,
          endpoints: n.endpoints.map((e) => (e.containerId === 'web' || e.containerId === 'vault' ? { ...e, upstreams: [ownUp.address] } : e)),
        })),
      };
    };
    const server = await DnsServer.start({ address: '127.0.0.1', port: 0, snapshot: snap(), upstreamTimeoutMs: 300 });
    try {
      const names = (u: FakeUpstream): string[] => u.seen.map((q) => q.questions[0]!.name);
      assert.equal((await ask(server.port, WEB, 'mine.example')).header.rcode, DnsRcode.NOERROR);
      assert.equal((await ask(server.port, WEB2, 'theirs.example')).header.rcode, DnsRcode.NOERROR);
      assert.equal((await ask(server.port, DB, 'db-side.example')).header.rcode, DnsRcode.NOERROR);
      assert.deepEqual(names(ownUp), ['mine.example']);
      assert.deepEqual(names(hostUp), ['theirs.example', 'db-side.example']);
      // Over TCP too.
      const s = await tcpConnect(server.port, WEB);
      s.write(framed(query('tcp.example')));
      const [tcpAnswer] = await readFrames(s, 1);
      s.destroy();
      assert.equal(decodeMessage(tcpAnswer!).header.rcode, DnsRcode.NOERROR);
      assert.deepEqual(names(ownUp), ['mine.example', 'tcp.example']);
      // Names of the network are still answered locally, not forwarded.
      assert.deepEqual((await ask(server.port, WEB, 'web2')).answers.map((a) => a.data), [WEB2]);
      assert.equal(ownUp.seen.length, 2);
      // --internal never forwards, even with --dns.
      assert.equal((await ask(server.port, VAULT, 'out.example')).header.rcode, DnsRcode.SERVFAIL);
      assert.equal(ownUp.seen.length + hostUp.seen.length, 4);
      // Without --dns in the next snapshot, the container falls back to the host's upstreams.
      server.update(snapshot([hostUp.address]));
      await ask(server.port, WEB, 'after.example');
      assert.deepEqual(names(hostUp).at(-1), 'after.example');
      assert.equal(ownUp.seen.length, 2);
    } finally {
      await server.close();
      hostUp.close();
      ownUp.close();
    }
  });
});

describe('DNS server limits', () => {
  it('refuses forwards beyond the per-client cap, and caps TCP connections', async () => {
    const silent = await FakeUpstream.start('silent');
    const server = await DnsServer.start({
      address: '127.0.0.1',
      port: 0,
      snapshot: snapshot([silent.address]),
      upstreamTimeoutMs: 1500,
      maxForwardsPerClient: 2,
      maxTcpConnectionsPerClient: 2,
    });
    try {
      const pending = [udpExchange(server.port, WEB, query('a.example')), udpExchange(server.port, WEB, query('b.example'))];
      await new Promise((r) => setTimeout(r, 100));
      const third = await ask(server.port, WEB, 'c.example');
      assert.equal(third.header.rcode, DnsRcode.REFUSED);
      // Another client has its own budget (answered SERVFAIL once its upstream times out).
      const other = await ask(server.port, WEB2, 'd.example');
      assert.equal(other.header.rcode, DnsRcode.SERVFAIL);
      for (const p of await Promise.all(pending)) assert.equal(decodeMessage(p!).header.rcode, DnsRcode.SERVFAIL);

      const a = await tcpConnect(server.port, WEB);
      const b = await tcpConnect(server.port, WEB);
      const c = await tcpConnect(server.port, WEB);
      await once(c, 'close');
      assert.equal(a.destroyed || b.destroyed, false);
      a.destroy();
      b.destroy();
    } finally {
      await server.close();
      silent.close();
    }
  });

  it('stops reading a TCP connection that floods queries it does not read answers to', async () => {
    const server = await DnsServer.start({ address: '127.0.0.1', port: 0, snapshot: snapshot([]) });
    try {
      const s = await tcpConnect(server.port, WEB);
      s.on('error', () => {});
      const q = framed(query('many', DnsType.A));
      const burst = Buffer.concat(Array.from({ length: 2000 }, () => q));
      // The client never reads: the server's answers fill the socket and it must stop reading.
      for (let i = 0; i < 20; i++) s.write(burst);
      await new Promise((r) => setTimeout(r, 500));
      const used = process.memoryUsage().rss;
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(process.memoryUsage().rss - used < 50 << 20, 'memory stays bounded');
      s.destroy();
      // The server still answers others.
      assert.equal((await ask(server.port, WEB2, 'web')).answers.length, 1);
    } finally {
      await server.close();
    }
  });
});
