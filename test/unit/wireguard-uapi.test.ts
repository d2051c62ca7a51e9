import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { UapiError, isCidr, isEndpoint, parseGet, renderSet, uapiGet, uapiSet } from '../../src/network/drivers/wireguard/uapi.js';

const K1 = '11'.repeat(32);
const K2 = '22'.repeat(32);
const K3 = '33'.repeat(32);

describe('UAPI set documents', () => {
  it('renders a full configuration with one line per value and the closing blank line', () => {
    const doc = renderSet({
      privateKey: K1,
      listenPort: 51820,
      replacePeers: true,
      peers: [
        { publicKey: K2, endpoint: '169.254.192.7:51820', allowedIps: ['10.5.0.3/32', 'fd00::3/128'], persistentKeepalive: 25 },
        { publicKey: K3, endpoint: '[fd00:1::2]:51820', allowedIps: [] },
      ],
    });
    assert.equal(
      doc,
      [
        'set=1',
        `private_key=${K1}`,
        'listen_port=51820',
        'replace_peers=true',
        `public_key=${K2}`,
        'endpoint=169.254.192.7:51820',
        'persistent_keepalive_interval=25',
        'replace_allowed_ips=true',
        'allowed_ip=10.5.0.3/32',
        'allowed_ip=fd00::3/128',
        `public_key=${K3}`,
        'endpoint=[fd00:1::2]:51820',
        'replace_allowed_ips=true',
        '',
        '',
      ].join('\n'),
    );
  });

  it('removes a peer with nothing but its key, and adds allowed IPs when asked not to replace', () => {
    const doc = renderSet({
      peers: [
        { publicKey: K2, remove: true, endpoint: 'ignored', allowedIps: ['nonsense'] },
        { publicKey: K3, allowedIps: ['10.0.0.0/8'], replaceAllowedIps: false, persistentKeepalive: 0 },
      ],
    });
    assert.equal(
      doc,
      `set=1\npublic_key=${K2}\nremove=true\npublic_key=${K3}\npersistent_keepalive_interval=0\nallowed_ip=10.0.0.0/8\n\n`,
    );
  });

  it('renders an empty set and port 0 (a random port)', () => {
    assert.equal(renderSet({}), 'set=1\n\n');
    assert.equal(renderSet({ listenPort: 0 }), 'set=1\nlisten_port=0\n\n');
    assert.equal(renderSet({ replacePeers: false, peers: [] }), 'set=1\n\n');
  });

  it('refuses bad keys, ports, endpoints, CIDRs and keepalives before anything is sent', () => {
    const peer = { publicKey: K2, allowedIps: [] as string[] };
    const bad: Array<[Parameters<typeof renderSet>[0], RegExp]> = [
      [{ privateKey: 'ab' }, /private key/],
      [{ privateKey: 'AB'.repeat(32) }, /private key/],
      [{ privateKey: K1 + '\nlisten_port=1' }, /private key/],
      [{ listenPort: -1 }, /listen port/],
      [{ listenPort: 65536 }, /listen port/],
      [{ listenPort: 1.5 }, /listen port/],
      [{ peers: [{ ...peer, publicKey: K2.slice(2) }] }, /peer public key/],
      [{ peers: [{ ...peer, endpoint: '10.0.0.1' }] }, /endpoint/],
      [{ peers: [{ ...peer, endpoint: '10.0.0.1:0' }] }, /endpoint/],
      [{ peers: [{ ...peer, endpoint: 'fd00::1:51820' }] }, /endpoint/],
      [{ peers: [{ ...peer, endpoint: 'example.com:51820' }] }, /endpoint/],
      [{ peers: [{ ...peer, allowedIps: ['10.0.0.1'] }] }, /allowed IP/],
      [{ peers: [{ ...peer, allowedIps: ['10.0.0.1/33'] }] }, /allowed IP/],
      [{ peers: [{ ...peer, persistentKeepalive: -1 }] }, /keepalive/],
      [{ peers: [{ ...peer, persistentKeepalive: 70000 }] }, /keepalive/],
    ];
    for (const [req, re] of bad) assert.throws(() => renderSet(req), re, JSON.stringify(req));
  });

  it('knows CIDRs and endpoints', () => {
    for (const s of ['0.0.0.0/0', '10.1.2.3/32', '::/0', 'fd00::1/128', '2001:db8::/32']) assert.ok(isCidr(s), s);
    for (const s of ['10.1.2.3', '10.1.2.3/', '10.1.2.3/032', '1.2.3.4/x', 'fd00::/129', 'fe80::1%eth0/64', '300.1.1.1/8', 'a/8'])
      assert.ok(!isCidr(s), s);
    for (const s of ['1.2.3.4:1', '1.2.3.4:65535', '[::1]:51820', '[fe80::1%u0]:51820']) assert.ok(isEndpoint(s), s);
    for (const s of ['1.2.3.4:65536', '1.2.3.4:01', '::1:51820', '[1.2.3.4]:5', '[::1]', 'host:1', '1.2.3.4:', ':1'])
      assert.ok(!isEndpoint(s), s);
  });
});

describe('UAPI get replies', () => {
  const reply = [
    `private_key=${K1}`,
    'listen_port=51820',
    `public_key=${K2}`,
    `preshared_key=${'00'.repeat(32)}`,
    'protocol_version=1',
    'endpoint=169.254.192.7:51820',
    'last_handshake_time_sec=1764606000',
    'last_handshake_time_nsec=123456789',
    'tx_bytes=1184',
    'rx_bytes=1028',
    'persistent_keepalive_interval=25',
    'allowed_ip=10.5.0.3/32',
    'allowed_ip=fd00::3/128',
    `public_key=${K3}`,
    `preshared_key=${'00'.repeat(32)}`,
    'protocol_version=1',
    'last_handshake_time_sec=0',
    'last_handshake_time_nsec=0',
    'tx_bytes=0',
    'rx_bytes=0',
    'persistent_keepalive_interval=0',
    'errno=0',
    '',
  ].join('\n');

  it('reads the device and each peer, ignoring what the driver does not use', () => {
    assert.deepEqual(parseGet(reply), {
      privateKey: K1,
      listenPort: 51820,
      peers: [
        {
          publicKey: K2,
          endpoint: '169.254.192.7:51820',
          allowedIps: ['10.5.0.3/32', 'fd00::3/128'],
          persistentKeepalive: 25,
          lastHandshakeSec: 1764606000,
          rxBytes: 1028,
          txBytes: 1184,
        },
        { publicKey: K3, allowedIps: [], persistentKeepalive: 0, lastHandshakeSec: 0, rxBytes: 0, txBytes: 0 },
      ],
    });
  });

  it('reads a reply without the errno line, and a device without a UDP socket', () => {
    assert.deepEqual(parseGet(`private_key=${K1}\nfwmark=0\n`), { privateKey: K1, peers: [] });
    assert.deepEqual(parseGet('errno=0\n'), { peers: [] });
    assert.deepEqual(parseGet(''), { peers: [] });
  });

  it('turns a non-zero errno into a UapiError and malformed lines into errors', () => {
    assert.throws(() => parseGet('errno=-22\n'), (e: unknown) => e instanceof UapiError && e.errno === 22 && /EINVAL/.test(e.message));
    assert.throws(() => parseGet('listen_port\n'), /malformed/);
    assert.throws(() => parseGet(`public_key=${K2}\ntx_bytes=-1\n`), /tx_bytes/);
  });
});

/** A stand-in for wireguard-go's socket: it answers each request with what `answer` returns. */
class FakeDevice {
  readonly dir = mkdtempSync(join(tmpdir(), 'arca-uapi-test-'));
  readonly path = join(this.dir, 'wgtest.sock');
  readonly received: string[] = [];
  /** A string, chunks sent 5 ms apart, 'HANGUP', or undefined: no answer. */
  answer: (req: string) => string | string[] | undefined = () => 'errno=0\n\n';
  /** Connections accepted so far, and the open ones. */
  connections = 0;
  readonly open = new Set<Socket>();
  private server: Server = createServer((sock: Socket) => {
    this.connections++;
    this.open.add(sock);
    sock.on('close', () => this.open.delete(sock));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const req = buf.slice(0, end + 2);
        buf = buf.slice(end + 2);
        this.received.push(req);
        const out = this.answer(req);
        if (out === undefined) continue;
        if (out === 'HANGUP') sock.destroy();
        else if (typeof out === 'string') sock.write(out);
        else out.forEach((chunk, i) => setTimeout(() => sock.write(chunk), 5 * i));
      }
    });
    sock.on('error', () => {});
  });
  async start(): Promise<void> {
    this.server.listen(this.path);
    await once(this.server, 'listening');
  }
  async stop(): Promise<void> {
    // The client holds its connection: the fake's ends would keep this process alive.
    for (const sock of this.open) sock.destroy();
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('UAPI over a unix socket', () => {
  const dev = new FakeDevice();
  before(() => dev.start());
  after(() => dev.stop());

  it('sends the set document and accepts errno=0', async () => {
    dev.answer = () => 'errno=0\n\n';
    await uapiSet(dev.path, { listenPort: 51820 });
    assert.equal(dev.received.at(-1), 'set=1\nlisten_port=51820\n\n');
  });

  it('reports wireguard-go negative errnos as positive ones', async () => {
    dev.answer = () => 'errno=-98\n\n';
    await assert.rejects(uapiSet(dev.path, { listenPort: 51820 }), (e: unknown) => {
      return e instanceof UapiError && e.errno === 98 && /EADDRINUSE/.test(e.message);
    });
    dev.answer = () => 'errno=-22\n\n';
    await assert.rejects(uapiSet(dev.path, {}), (e: unknown) => e instanceof UapiError && e.errno === 22);
  });

  it('reads a get reply that arrives in pieces', async () => {
    dev.answer = () => [`listen_port=51`, `820\npublic_key=${K2}\n`, 'errno=0\n', '\n'];
    const st = await uapiGet(dev.path);
    assert.equal(st.listenPort, 51820);
    assert.equal(st.peers.length, 1);
  });

  it('reads a full get reply and sends get=1', async () => {
    dev.answer = () => `private_key=${K1}\nlisten_port=7\npublic_key=${K2}\nallowed_ip=10.0.0.2/32\nerrno=0\n\n`;
    const st = await uapiGet(dev.path);
    assert.equal(dev.received.at(-1), 'get=1\n\n');
    assert.equal(st.listenPort, 7);
    assert.deepEqual(st.peers.map((p) => [p.publicKey, p.allowedIps]), [[K2, ['10.0.0.2/32']]]);
  });

  it('times out when the device does not answer', async () => {
    dev.answer = () => undefined;
    const t0 = Date.now();
    await assert.rejects(uapiGet(dev.path, 100), (e: unknown) => !(e instanceof UapiError) && /no reply within 100 ms/.test(String(e)));
    assert.ok(Date.now() - t0 < 1000);
  });

  it('fails plainly when the connection closes early or cannot be made', async () => {
    dev.answer = () => 'HANGUP';
    await assert.rejects(uapiSet(dev.path, {}), (e: unknown) => !(e instanceof UapiError) && /closed before/.test(String(e)));
    await assert.rejects(uapiGet(join(dev.dir, 'absent.sock')), (e: unknown) => {
      return !(e instanceof UapiError) && (e as NodeJS.ErrnoException).code === 'ENOENT';
    });
  });

  it('holds one connection for requests in a row and in parallel, answered in order; a dropped one is replaced', async () => {
    dev.answer = (req) => (req.startsWith('get') ? `listen_port=${dev.received.length}\nerrno=0\n\n` : 'errno=0\n\n');
    await uapiSet(dev.path, {});
    const first = dev.connections;
    const ports = await Promise.all([uapiGet(dev.path), uapiGet(dev.path), uapiGet(dev.path)].map((p) => p.then((st) => st.listenPort ?? -1)));
    assert.deepEqual(ports, [...ports].sort((a, b) => a - b));
    assert.equal(new Set(ports).size, 3);
    assert.equal(dev.connections, first, 'no new connection while the held one works');
    // The device restarted: the held connection is gone, the next request makes a new one.
    for (const sock of dev.open) sock.destroy();
    await new Promise((r) => setTimeout(r, 20));
    await uapiSet(dev.path, {});
    assert.equal(dev.connections, first + 1);
    // A refused set may leave part of its document unread: that connection is not used again.
    dev.answer = () => 'errno=-22\n\n';
    await assert.rejects(uapiSet(dev.path, {}), UapiError);
    dev.answer = () => 'errno=0\n\n';
    await uapiSet(dev.path, {});
    assert.equal(dev.connections, first + 2);
  });

  it('refuses an invalid document without connecting', async () => {
    const before = dev.received.length;
    await assert.rejects(uapiSet(dev.path, { privateKey: 'x' }), /private key/);
    assert.equal(dev.received.length, before);
  });
});
