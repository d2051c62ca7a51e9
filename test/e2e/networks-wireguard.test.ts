/**
 * The `wireguard` driver beyond the compliance suite (issue 11, "Proof, not assumption" and "Bad
 * input and faults"): a capture of the underlay shows only WireGuard's UDP and never the plaintext;
 * the container sees only its `ethN`; private keys live in one 0600 file; a killed wireguard-go
 * comes back and traffic resumes whichever side sends; a daemon restart adopts the tunnels; bad
 * input is refused with nothing made; inspect -v shows the peers; compose and policies work on it;
 * what a crash half-made is swept at start-up.
 *
 * One daemon serves the file. Its fixture is one network with two containers (wa, wb) that each run
 * a persistent TCP sink on port 5555 appending to /tmp/got; tests that need more make and remove it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, rawRequest, sleep } from './containers-support.js';
import { COMPOSE, exec, skipWithoutCompose } from './docker-clients.js';
import { alive, daemonTag, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { endpointOf, hostLinkNames, inHost, inspectNet, ipOf } from './networks-support.js';
import { apiJson } from './policies-support.js';
import {
  bridgeOf,
  describeFrame,
  endpointNames,
  type Frame,
  endpointObjects,
  hiddenNamespaces,
  inUnderlay,
  occurrences,
  parsePcap,
  pidFiles,
  processesOf,
  runtimePaths,
  skipWithoutWireguardGo,
  uapiSocketPath,
  wgPid,
  wireguardGoIf,
} from './wireguard-support.js';
import { DEFAULT_WG_MTU, HIDDEN_INNER_IF } from '../../src/network/drivers/wireguard/wg-names.js';

const NET = 'wge2e';
const SUBNET = '10.203.0.0/24';
const SINK_PORT = 5555;
/** Each container keeps a TCP sink: every connection's bytes are appended to /tmp/got. */
const SINK = ['sh', '-c', `nc -ll -p ${SINK_PORT} -e sh -c 'cat >> /tmp/got' & exec sleep 100000`];
const LISTEN_PORT = 51820;
/** busybox ping -p: the payload pattern byte ('Z'), and what a run of it looks like on the wire. */
const PING_PATTERN = '5a';
const PING_RUN = 'Z'.repeat(16);

describe('wireguard driver', { skip: skipWithoutWireguardGo }, () => {
  let d: TestDaemon;
  let netId = '';
  const ip: Record<string, string> = {};

  before(async () => {
    d = await startDaemon();
    netId = await d.dockerOk(['network', 'create', '-d', 'wireguard', '--subnet', SUBNET, NET]);
    for (const c of ['wa', 'wb']) {
      await d.dockerOk(['run', '-d', '--name', c, '--network', NET, TEST_IMAGE, ...SINK]);
      ip[c] = await ipOf(d, c, NET);
    }
  });

  after(async () => {
    await d?.cleanup();
  });

  const pings = async (from: string, to: string, waitS = 1): Promise<boolean> => (await d.docker(['exec', from, 'ping', '-c', '1', '-W', String(waitS), to])).code === 0;

  /** `docker exec FROM ping -i 0.1 -c COUNT -p 5a TO`: the sequence numbers answered. */
  const pingSeries = async (from: string, to: string, count: number): Promise<number[]> => {
    const r = await d.docker(['exec', from, 'ping', '-i', '0.1', '-c', String(count), '-W', '1', '-p', PING_PATTERN, to], { timeoutMs: count * 100 + 20_000 });
    return [...r.stdout.matchAll(/seq=([0-9]+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  };

  /** The longest run of unanswered pings in a series of `count` (leading and trailing runs count). */
  const longestLoss = (seqs: number[], count: number): number => {
    let worst = seqs.length ? seqs[0]! : count;
    for (let i = 1; i < seqs.length; i++) worst = Math.max(worst, seqs[i]! - seqs[i - 1]! - 1);
    if (seqs.length) worst = Math.max(worst, count - 1 - seqs[seqs.length - 1]!);
    return worst;
  };

  /** `wg show IF dump` (the UAPI socket path is global, so from here): the device and its peers. */
  const wgDump = (ifname: string): { privateKey: string; publicKey: string; listenPort: string; peers: Array<{ publicKey: string; endpoint: string; allowedIps: string; handshake: number; rx: number; tx: number; keepalive: string }> } => {
    const r = spawnSync('wg', ['show', ifname, 'dump'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `wg show ${ifname} dump: ${r.stderr}`);
    const [dev, ...peers] = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    return {
      privateKey: dev![0]!,
      publicKey: dev![1]!,
      listenPort: dev![2]!,
      peers: peers.map((p) => ({ publicKey: p[0]!, endpoint: p[2]!, allowedIps: p[3]!, handshake: Number(p[4]), rx: Number(p[5]), tx: Number(p[6]), keepalive: p[7]! })),
    };
  };

  /** Starts tcpdump on a link of the daemon's netns writing pcap to our pipe; resolves once it listens. */
  const capture = async (link: string): Promise<{ stop: () => Promise<Buffer> }> => {
    const chunks: Buffer[] = [];
    const p: ChildProcess = spawn('nsenter', [`--net=/run/netns/${d.hostNs}`, '--', 'tcpdump', '-i', link, '-n', '-s', '0', '--immediate-mode', '-U', '-w', '-'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    p.stdout!.on('data', (c: Buffer) => chunks.push(c));
    p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<void>((res) => p.once('close', () => res()));
    await eventually(`tcpdump on ${link} to listen`, () => (/listening on/.test(err) ? true : p.exitCode !== null ? assert.fail(`tcpdump exited: ${err}`) : undefined), 10_000);
    // "listening" comes before the capture really starts (measured: ~1–1.5 s under nsenter).
    await sleep(1500);
    return {
      stop: async () => {
        await sleep(300);
        p.kill('SIGINT');
        await exited;
        return Buffer.concat(chunks);
      },
    };
  };

  /**
   * Frames of an underlay capture that are not WireGuard between underlay addresses on its port.
   * ARP is what a routed /32 underlay needs to reach the next hop; no IPv6 either (the driver turns
   * it off there). `killed`: while a wireguard-go is dead, its namespace's kernel answers the peer's
   * datagrams with ICMP port unreachable, quoting them (ciphertext): WireGuard still, nothing else.
   */
  const notWireguard = (frames: Frame[], killed = false): Frame[] => {
    const isWg = (x: { proto: number; src: string; dst: string; sport?: number; dport?: number }): boolean =>
      x.proto === 17 && inUnderlay(x.src) && inUnderlay(x.dst) && x.sport === LISTEN_PORT && x.dport === LISTEN_PORT;
    return frames.filter((f) => {
      if (f.ipv4) {
        if (isWg(f.ipv4)) return false;
        const i = f.ipv4.icmp;
        return !(killed && i?.type === 3 && i.code === 3 && i.quoted && isWg(i.quoted) && inUnderlay(f.ipv4.src) && inUnderlay(f.ipv4.dst));
      }
      if (f.arp) return !(inUnderlay(f.arp.sender) && inUnderlay(f.arp.target));
      return true;
    });
  };

  /** Traffic with known plaintext from a to b: pings with the pattern, then three marker lines over TCP. */
  const plaintextTraffic = async (from: string, toAddr: string, to: string, marker: string): Promise<void> => {
    const r = await d.docker(['exec', from, 'ping', ...(toAddr.includes(':') ? ['-6'] : []), '-c', '10', '-i', '0.1', '-p', PING_PATTERN, '-W', '2', toAddr]);
    assert.equal(r.code, 0, `${from} pings ${toAddr} with a payload pattern: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /10 packets received/, r.stdout);
    const lines = [1, 2, 3].map((i) => `${marker} line ${i}`).join('\n') + '\n';
    const sent = await d.docker(['exec', '-i', from, 'timeout', '5', 'nc', toAddr, String(SINK_PORT)], { input: lines });
    assert.equal(sent.code, 0, `${from} sends the marker to ${toAddr}:${SINK_PORT}: ${sent.stderr}`);
    await eventually(`the marker to arrive in ${to}`, async () => ((await d.docker(['exec', to, 'cat', '/tmp/got'])).stdout.includes(`${marker} line 3`) ? true : undefined), 5000);
  };

  it('the container sees only lo and eth0: no WireGuard interface, no underlay address or route', async () => {
    const links = (await d.dockerOk(['exec', 'wa', 'ip', '-o', 'link', 'show'])).split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter(Boolean);
    assert.deepEqual(links.sort(), ['eth0', 'lo']);
    const addrs = await d.dockerOk(['exec', 'wa', 'ip', '-o', '-4', 'addr', 'show']);
    const v4 = [...addrs.matchAll(/inet ([0-9.]+)\//g)].map((m) => m[1]!);
    assert.deepEqual(v4.sort(), ['127.0.0.1', ip.wa!].sort(), addrs);
    assert.ok(!v4.some(inUnderlay), `no underlay address: ${addrs}`);
    const routes = await d.dockerOk(['exec', 'wa', 'ip', 'route', 'show']);
    assert.doesNotMatch(routes, /169\.254\./, routes);
    // The tunnel's parts exist, where the design puts them.
    const ep = await endpointObjects(d, 'wa', NET);
    assert.ok(hiddenNamespaces(d).includes(ep.netns), `hidden netns ${ep.netns}`);
    const hidden = spawnSync('ip', ['-n', ep.netns, '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    assert.match(hidden, new RegExp(`: ${ep.wgIf}:`), hidden);
    assert.ok(hostLinkNames(d).includes(ep.hostVeth), `host veth ${ep.hostVeth}`);
    assert.ok(hostLinkNames(d).includes(bridgeOf(netId)), `bridge ${bridgeOf(netId)}`);
    assert.ok(wgPid(d, ep.wgIf), `wireguard-go for ${ep.wgIf} with its pidfile ${ep.pidFile}`);
    // One MTU along the way (ICMP from a remote hop never arrives, so PMTU discovery cannot fix a mismatch).
    assert.equal(await d.dockerOk(['exec', 'wa', 'cat', '/sys/class/net/eth0/mtu']), String(DEFAULT_WG_MTU));
    for (const l of [ep.wgIf, HIDDEN_INNER_IF]) {
      const mtu = /\bmtu ([0-9]+)/.exec(spawnSync('ip', ['-n', ep.netns, 'link', 'show', l], { encoding: 'utf8' }).stdout)?.[1];
      assert.equal(mtu, String(DEFAULT_WG_MTU), `${l} in the hidden namespace`);
    }
  });

  it('the underlay carries only UDP between underlay addresses on 51820, never the marker or the ping payload; a bridge network shows both', async (t) => {
    const marker = `WGE2E-PLAINTEXT-MARKER-${randomBytes(6).toString('hex')}-the-quick-brown-fox`;
    const cap = await capture(bridgeOf(netId));
    let pcap: Buffer;
    try {
      await plaintextTraffic('wa', ip.wb!, 'wb', marker);
    } finally {
      pcap = await cap.stop();
    }
    const frames = parsePcap(pcap);
    const udp = frames.filter((f) => f.ipv4?.proto === 17);
    assert.deepEqual(notWireguard(frames).map(describeFrame), [], 'only WireGuard between underlay addresses');
    // 10 echo requests and replies, and the TCP connection: all of it must have been captured.
    assert.ok(udp.length >= 24, `${udp.length} WireGuard datagrams captured (of ${frames.length} frames)`);
    assert.equal(occurrences(pcap, marker), 0, 'the TCP marker in the underlay capture');
    assert.equal(occurrences(pcap, PING_RUN), 0, 'the ping payload in the underlay capture');
    t.diagnostic(`underlay: ${frames.length} frames, ${udp.length} WireGuard datagrams, ${frames.filter((f) => f.arp).length} ARP; marker 0, payload 0`);

    // Control: the same method on a bridge network sees the plaintext, so the zero above means something.
    const ctl = await d.dockerOk(['network', 'create', '--subnet', '10.203.100.0/24', 'wgctl']);
    try {
      await d.dockerOk(['network', 'connect', 'wgctl', 'wa']);
      await d.dockerOk(['network', 'connect', 'wgctl', 'wb']);
      const ctlB = await ipOf(d, 'wb', 'wgctl');
      const cap2 = await capture(`br-${ctl.slice(0, 12)}`);
      let plain: Buffer;
      try {
        await plaintextTraffic('wa', ctlB, 'wb', `${marker}-control`);
      } finally {
        plain = await cap2.stop();
      }
      assert.equal(occurrences(plain, `${marker}-control`), 3, 'the marker lines on the bridge network');
      assert.ok(occurrences(plain, PING_RUN) >= 10, `the ping payload on the bridge network (${occurrences(plain, PING_RUN)})`);
      t.diagnostic(`control (bridge): marker ${occurrences(plain, `${marker}-control`)}, payload runs ${occurrences(plain, PING_RUN)}`);
    } finally {
      await d.docker(['network', 'disconnect', '-f', 'wgctl', 'wa']);
      await d.docker(['network', 'disconnect', '-f', 'wgctl', 'wb']);
      await d.docker(['network', 'rm', 'wgctl']);
    }
  });

  it('IPv6 inside a wireguard network is tunnelled too: the underlay shows only WireGuard over IPv4, no plaintext', async (t) => {
    const net = 'wge2e6';
    const id = await d.dockerOk(['network', 'create', '-d', 'wireguard', '--subnet', '10.203.70.0/24', '--ipv6', '--subnet', 'fd31:c0de:70::/64', net]);
    try {
      for (const c of ['w6a', 'w6b']) await d.dockerOk(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, ...SINK]);
      const b6 = (await endpointOf(d, 'w6b', net)).GlobalIPv6Address;
      assert.match(b6, /^fd31:c0de:70::/);
      const marker = `WGE2E-V6-MARKER-${randomBytes(6).toString('hex')}-jumps-over`;
      const cap = await capture(bridgeOf(id));
      let pcap: Buffer;
      try {
        await plaintextTraffic('w6a', b6, 'w6b', marker);
      } finally {
        pcap = await cap.stop();
      }
      const frames = parsePcap(pcap);
      assert.deepEqual(notWireguard(frames).map(describeFrame), [], 'only WireGuard between underlay addresses');
      assert.ok(frames.filter((f) => f.ipv4?.proto === 17).length >= 24, `${frames.length} frames`);
      assert.equal(occurrences(pcap, marker), 0, 'the TCP marker (over IPv6) in the underlay capture');
      assert.equal(occurrences(pcap, PING_RUN), 0, 'the ping6 payload in the underlay capture');
      t.diagnostic(`IPv6 overlay: ${frames.length} underlay frames, marker 0, payload 0`);
    } finally {
      await d.docker(['rm', '-f', 'w6a', 'w6b']);
      await d.docker(['network', 'rm', net]);
    }
  });

  it('the control plane is out of the container\'s reach: the host\'s own addresses, underlay addresses, its hidden namespace', async () => {
    const PORT = 18999;
    // A service of the host's, on every address of the daemon's namespace.
    const srv = spawn('nsenter', [`--net=/run/netns/${d.hostNs}`, '--', 'busybox', 'nc', '-ll', '-p', String(PORT), '-e', 'echo', 'ok'], { stdio: 'ignore' });
    try {
      await eventually('the host service', () => (inHost(d, ['busybox', 'nc', '127.0.0.1', String(PORT)]).stdout.includes('ok') ? true : undefined), 5000);
      const hostGw = await d.dockerOk(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'bridge']);
      const probe = async (c: string, addr: string, port: number): Promise<string> => {
        const r = await d.docker(['exec', c, 'sh', '-c', `timeout 2 nc ${addr} ${port} </dev/null 2>&1; true`]);
        return r.stdout;
      };
      // Controls from the default bridge (no protection there): the service answers, a closed port refuses.
      await d.dockerOk(['run', '-d', '--name', 'wctl', '--network', 'bridge', TEST_IMAGE, 'sleep', '600']);
      try {
        assert.match(await probe('wctl', hostGw, PORT), /ok/, 'control: a bridge container reaches the host service');
        assert.match(await probe('wctl', hostGw, 9), /refused/, 'control: a closed port answers "refused"');
      } finally {
        await d.docker(['rm', '-f', 'wctl']);
      }
      const underlayOf = async (c: string): Promise<string> => {
        const view = (await apiJson(d, 'GET', `/networks/${netId}?verbose=true`)).body;
        const id = await d.dockerOk(['inspect', '-f', '{{.Id}}', c]);
        return String(view.Containers[id].DriverStatus.Endpoint).split(':')[0]!;
      };
      const gw = (await endpointOf(d, 'wa', NET)).Gateway;
      for (const [addr, what] of [
        [hostGw, 'the host\'s address on the default bridge'],
        ['169.254.192.1', 'the host\'s underlay address'],
      ] as const) {
        const out = await probe('wa', addr, PORT);
        assert.doesNotMatch(out, /ok|refused/, `${what} (${addr}:${PORT}) must be out of reach: ${out}`);
      }
      // Dropped, not refused: nothing in the hidden namespaces answers a container's TCP.
      for (const [addr, what] of [
        [gw, 'the gateway (its hidden namespace)'],
        [await underlayOf('wa'), 'its own underlay address'],
        [await underlayOf('wb'), 'a peer\'s underlay address'],
      ] as const) {
        const out = await probe('wa', addr, 9);
        assert.doesNotMatch(out, /refused/, `${what} (${addr}:9) must not answer: ${out}`);
      }
      assert.ok(!(await pings('wa', await underlayOf('wb'))), 'no ping to a peer\'s underlay address');
      assert.ok(await pings('wa', gw), 'ICMP to the gateway stays');
      assert.ok(await pings('wa', ip.wb!), 'the peer itself, over the tunnel');
    } finally {
      srv.kill('SIGKILL');
    }
  });

  it('private keys are only in <root>/network/wireguard/endpoints.json, mode 0600, and they are the tunnels\' keys', async () => {
    const file = join(d.root, 'network', 'wireguard', 'endpoints.json');
    assert.ok(existsSync(file), `${file} exists`);
    assert.equal((statSync(file).mode & 0o777).toString(8), '600');
    const privs = new Set<string>();
    const keysSeen = new Set<string>();
    const walk = (v: unknown, key = ''): void => {
      if (typeof v === 'string' && /private/i.test(key)) privs.add(v);
      else if (Array.isArray(v)) v.forEach((x) => walk(x, key));
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (keysSeen.add(k), walk(x, k));
    };
    walk(JSON.parse(readFileSync(file, 'utf8')));
    assert.ok(privs.size >= 2, `private keys of both endpoints in the state file (fields: ${[...keysSeen].join(', ')})`);
    const forms = (k: string): string[] => (/^[0-9a-f]{64}$/.test(k) ? [k, Buffer.from(k, 'hex').toString('base64')] : [k, Buffer.from(k, 'base64').toString('hex')]);
    const allForms = [...privs].flatMap(forms);
    for (const c of ['wa', 'wb']) {
      const ep = await endpointObjects(d, c, NET);
      const live = wgDump(ep.wgIf).privateKey;
      assert.ok(allForms.includes(live), `${c}'s wireguard-go runs with a key from the state file`);
      const pid = wgPid(d, ep.wgIf)!;
      for (const what of ['cmdline', 'environ']) {
        const text = readFileSync(`/proc/${pid}/${what}`, 'latin1');
        assert.ok(!allForms.some((k) => text.includes(k)), `no private key in wireguard-go's ${what}`);
      }
    }
    // Nowhere else: every other file of the daemon (state database included), its log, the API's views.
    const hits: string[] = [];
    const scan = (dir: string, dev: number): void => {
      for (const ent of readdirSync(dir)) {
        const p = join(dir, ent);
        let st;
        try {
          st = lstatSync(p);
        } catch {
          continue;
        }
        if (st.dev !== dev) continue; // container root filesystems (overlay) and other mounts
        if (st.isDirectory()) scan(p, dev);
        else if (st.isFile() && p !== file && st.size < 64 * 1024 * 1024) {
          const buf = readFileSync(p);
          for (const k of allForms) if (buf.includes(k)) hits.push(`${p}`);
        }
      }
    };
    for (const dir of [d.root, d.execRoot]) scan(dir, statSync(dir).dev);
    const views = [await d.dockerOk(['network', 'inspect', '-v', NET]), await d.dockerOk(['inspect', 'wa', 'wb']), readFileSync(d.logPath, 'latin1')];
    for (const [i, text] of views.entries()) if (allForms.some((k) => text.includes(k))) hits.push(['network inspect -v', 'docker inspect', 'the daemon log'][i]!);
    assert.deepEqual([...new Set(hits)], [], 'private keys outside the state file');
  });

  /**
   * Kills the wireguard-go of `victim`'s endpoint while `sender` pings `target` every 0.1 s: a new
   * wireguard-go (same keys, port and peers) must be there within 2 s and the pings must resume
   * within 2 s; while the tunnel is down, nothing goes onto the underlay in plaintext (the
   * capture of the network's bridge holds only WireGuard and never the ping payload).
   */
  const killAndWatch = async (victim: string, sender: string, target: string): Promise<{ respawnMs: number; lostMs: number }> => {
    const ep = await endpointObjects(d, victim, NET);
    const old = wgPid(d, ep.wgIf);
    assert.ok(old, `wireguard-go of ${victim} (${ep.wgIf})`);
    const before = wgDump(ep.wgIf);
    const count = 50;
    const cap = await capture(bridgeOf(netId));
    let pcap: Buffer | undefined;
    const series = pingSeries(sender, ip[target]!, count).finally(async () => {
      pcap = await cap.stop();
    });
    await sleep(1200);
    process.kill(old, 'SIGKILL');
    const killedAt = Date.now();
    const fresh = await eventually(`a new wireguard-go for ${ep.wgIf}`, () => {
      const p = wgPid(d, ep.wgIf);
      return p && p !== old ? p : undefined;
    }, 5000);
    const respawnMs = Date.now() - killedAt;
    const seqs = await series;
    const frames = parsePcap(pcap!);
    assert.deepEqual(notWireguard(frames, true).map(describeFrame), [], 'only WireGuard on the underlay across the kill');
    assert.equal(occurrences(pcap!, PING_RUN), 0, 'the ping payload on the underlay across the kill');
    const lost = longestLoss(seqs, count);
    assert.ok(respawnMs <= 2000, `re-created after ${respawnMs} ms`);
    assert.ok(seqs.length > 0 && lost * 100 <= 2000, `${sender} → ${target} pings resumed after at most 2 s: the longest loss was ${lost} pings (${lost * 100} ms); answered: ${seqs.join(',')}`);
    assert.ok(seqs[seqs.length - 1]! >= count - 3, `pings answered until the end: ${seqs.join(',')}`);
    assert.ok(alive(fresh));
    const after = wgDump(ep.wgIf);
    assert.equal(after.privateKey, before.privateKey, 'the same private key');
    assert.equal(after.listenPort, String(LISTEN_PORT), 'the same listen port');
    const peerSet = (x: typeof before): string[] => x.peers.map((p) => `${p.publicKey} ${p.endpoint} ${p.allowedIps}`).sort();
    assert.deepEqual(peerSet(after), peerSet(before), 'the same peers');
    return { respawnMs, lostMs: lost * 100 };
  };

  it('kill -9 of a wireguard-go: a new one within 2 s, pings resume within 2 s when the restarted side sends', async (t) => {
    const m = await killAndWatch('wa', 'wa', 'wb');
    t.diagnostic(`re-created after ${m.respawnMs} ms; longest loss ${m.lostMs} ms`);
  });

  it('kill -9 of a wireguard-go: pings resume within 2 s when only the other side sends (the restarted side handshakes itself)', async (t) => {
    const m = await killAndWatch('wa', 'wb', 'wa');
    t.diagnostic(`re-created after ${m.respawnMs} ms; longest loss ${m.lostMs} ms`);
  });

  it('a daemon restart (SIGTERM, then kill -9) adopts the running wireguard-go processes; traffic flows; an adopted one is still supervised', async (t) => {
    const livePids = (): Record<string, number> => Object.fromEntries([...pidFiles(d)].filter(([ifname, pid]) => wireguardGoIf(pid) === ifname));
    const before = livePids();
    assert.ok(Object.keys(before).length >= 2, JSON.stringify(before));
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await d.restart({ signal });
      assert.deepEqual(livePids(), before, `the same wireguard-go PIDs after a daemon restart (${signal})`);
      assert.ok(await pings('wa', ip.wb!), `wa → wb after ${signal}`);
      assert.ok(await pings('wb', ip.wa!), `wb → wa after ${signal}`);
    }
    const m = await killAndWatch('wb', 'wa', 'wb');
    t.diagnostic(`adopted wireguard-go killed: re-created after ${m.respawnMs} ms; longest loss ${m.lostMs} ms`);
    // New endpoints still join the mesh.
    await d.dockerOk(['run', '-d', '--name', 'wc', '--network', NET, TEST_IMAGE, 'sleep', '600']);
    try {
      assert.ok(await pings('wc', ip.wa!, 2), 'a container started after the restarts reaches wa');
      assert.ok(await pings('wb', await ipOf(d, 'wc', NET), 2), 'and wb reaches it');
    } finally {
      await d.docker(['rm', '-f', 'wc']);
    }
  });

  it('bad input: unknown option, MTU out of range, a subnet in the underlay, an overlapping subnet: refused (400, 403 for the overlap as dockerd), nothing created', async () => {
    const snapshot = async (): Promise<{ nets: string; links: string[]; hidden: string[] }> => ({
      nets: await d.dockerOk(['network', 'ls', '--format', '{{.Name}}']),
      links: hostLinkNames(d).sort(),
      hidden: hiddenNamespaces(d).sort(),
    });
    const was = await snapshot();
    const cases: Array<{ args: string[]; body: Record<string, unknown>; status: number; text: RegExp }> = [
      { args: ['-o', 'arca.nope=1'], body: { Options: { 'arca.nope': '1' } }, status: 400, text: /arca\.nope/ },
      { args: ['-o', 'com.docker.network.driver.mtu=1279'], body: { Options: { 'com.docker.network.driver.mtu': '1279' } }, status: 400, text: /mtu|MTU/ },
      { args: ['-o', 'com.docker.network.driver.mtu=65456'], body: { Options: { 'com.docker.network.driver.mtu': '65456' } }, status: 400, text: /mtu|MTU/ },
      { args: ['-o', 'com.docker.network.driver.mtu=big'], body: { Options: { 'com.docker.network.driver.mtu': 'big' } }, status: 400, text: /mtu|MTU/ },
      { args: ['--subnet', '169.254.200.0/24'], body: { IPAM: { Config: [{ Subnet: '169.254.200.0/24' }] } }, status: 400, text: /169\.254\.200\.0\/24/ },
      { args: ['--subnet', '10.203.0.128/25'], body: { IPAM: { Config: [{ Subnet: '10.203.0.128/25' }] } }, status: 403, text: /Pool overlaps with other one on this address space/ },
    ];
    for (const c of cases) {
      const r = await d.docker(['network', 'create', '-d', 'wireguard', ...c.args, 'wgbad']);
      assert.notEqual(r.code, 0, `docker network create ${c.args.join(' ')} must fail`);
      assert.match(r.stderr, c.text, `${c.args.join(' ')}: ${r.stderr}`);
      const raw = await rawRequest(d.socket, 'POST', '/networks/create', JSON.stringify({ Name: 'wgbad', Driver: 'wireguard', ...c.body }));
      assert.equal(raw.status, c.status, `POST /networks/create ${JSON.stringify(c.body)}: ${raw.body}`);
      assert.match(raw.body, c.text);
      assert.deepEqual(await snapshot(), was, `nothing created by ${c.args.join(' ')}`);
    }
    // The bounds themselves are accepted (and the overlap check is IPAM's, the same as bridge's).
    const bridgeOverlap = await rawRequest(d.socket, 'POST', '/networks/create', JSON.stringify({ Name: 'wgbad', IPAM: { Config: [{ Subnet: '10.203.0.128/25' }] } }));
    assert.equal(bridgeOverlap.status, 403, bridgeOverlap.body);
    for (const mtu of ['1280', '65455']) {
      await d.dockerOk(['network', 'create', '-d', 'wireguard', '-o', `com.docker.network.driver.mtu=${mtu}`, `wgmtu${mtu}`]);
      await d.dockerOk(['network', 'rm', `wgmtu${mtu}`]);
    }
  });

  it('inspect -v (CLI and API) shows each endpoint\'s WireGuard peers with handshake and bytes; plain inspect does not', async () => {
    assert.ok(await pings('wa', ip.wb!, 2), 'traffic first, so there is a handshake to show');
    const wa = await endpointObjects(d, 'wa', NET);
    const wb = await endpointObjects(d, 'wb', NET);
    const ids: Record<string, string> = {};
    for (const c of ['wa', 'wb']) ids[c] = await d.dockerOk(['inspect', '-f', '{{.Id}}', c]);
    const api = await apiJson(d, 'GET', `/networks/${netId}?verbose=true`);
    assert.equal(api.status, 200);
    const cli = (JSON.parse(await d.dockerOk(['network', 'inspect', '-v', NET])) as Array<Record<string, any>>)[0]!;
    for (const [how, view] of [['API', api.body], ['docker network inspect -v', cli]] as const) {
      const st = view.Containers[ids.wa!]?.DriverStatus;
      assert.ok(st, `${how}: DriverStatus of wa: ${JSON.stringify(view.Containers[ids.wa!])}`);
      assert.equal(st.Interface, wa.wgIf, how);
      assert.match(st.PublicKey, /^[A-Za-z0-9+/]{43}=$/, how);
      assert.match(st.Endpoint, /^169\.254\.[0-9.]+:51820$/, how);
      assert.ok(inUnderlay(st.Endpoint.split(':')[0]), `${how}: ${st.Endpoint} in the underlay`);
      assert.equal(st.ListenPort, LISTEN_PORT, how);
      assert.equal(st.Pid, wgPid(d, wa.wgIf), how);
      assert.equal(st.Peers.length, 1, `${how}: wa's one peer: ${JSON.stringify(st.Peers)}`);
      const peer = st.Peers[0];
      assert.equal(peer.EndpointID, wb.endpointId, how);
      assert.equal(peer.PublicKey, view.Containers[ids.wb!].DriverStatus.PublicKey, `${how}: the peer is wb's key`);
      assert.equal(peer.Endpoint, view.Containers[ids.wb!].DriverStatus.Endpoint, how);
      assert.deepEqual(peer.AllowedIPs, [`${ip.wb}/32`], how);
      const age = Date.now() - Date.parse(peer.LatestHandshake);
      assert.ok(age >= -5000 && age < 10 * 60_000, `${how}: latest handshake ${peer.LatestHandshake}`);
      assert.ok(peer.RxBytes > 0 && peer.TxBytes > 0, `${how}: bytes ${peer.RxBytes}/${peer.TxBytes}`);
    }
    const plain = await inspectNet(d, NET);
    assert.equal(plain['Containers'][ids.wa!].DriverStatus, undefined, 'no DriverStatus without -v');
  });

  it('network policies are enforced on a wireguard network: only api reaches db on tcp/5432', async () => {
    const net = 'wgpol';
    const serve = (port: number): string => `httpd -p ${port} -h /etc`;
    const names = ['pdb', 'papi', 'pother'];
    await d.dockerOk(['network', 'create', '-d', 'wireguard', '--subnet', '10.203.50.0/24', net]);
    try {
      await d.dockerOk(['run', '-d', '--name', 'pdb', '--network', net, '--label', 'app=db', TEST_IMAGE, 'sh', '-c', `${serve(5432)} && ${serve(80)} && exec sleep 600`]);
      await d.dockerOk(['run', '-d', '--name', 'papi', '--network', net, '--label', 'app=api', TEST_IMAGE, 'sh', '-c', `${serve(8000)} && exec sleep 600`]);
      await d.dockerOk(['run', '-d', '--name', 'pother', '--network', net, '--label', 'app=other', TEST_IMAGE, 'sleep', '600']);
      const db = await ipOf(d, 'pdb', net);
      const api = await ipOf(d, 'papi', net);
      const reaches = async (from: string, addr: string, port: number): Promise<boolean> => {
        const r = await d.docker(['exec', from, 'timeout', '2', 'wget', '-q', '-O', '-', `http://${addr}:${port}/hostname`]);
        return r.code === 0 && r.stdout.trim().length > 0;
      };
      await eventually('db to serve', async () => ((await reaches('pother', db, 5432)) ? true : undefined), 10_000);
      assert.ok(await reaches('pother', db, 80), 'open before any policy');
      const put = await apiJson(d, 'PUT', '/arca/v1/policies/wg-db-from-api', {
        network: net,
        select: { labels: { app: 'db' } },
        ingress: [{ from: [{ labels: { app: 'api' } }], ports: [{ proto: 'tcp', port: 5432 }] }],
      });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      try {
        assert.ok(await reaches('papi', db, 5432), 'api → db:5432 allowed');
        assert.ok(!(await reaches('pother', db, 5432)), 'other → db:5432 blocked');
        assert.ok(!(await reaches('papi', db, 80)), 'api → db:80 blocked (port not in the rule)');
        assert.ok(await reaches('pdb', api, 8000), 'db → api: api is not selected');
        const counters = (await apiJson(d, 'GET', '/arca/v1/policies/wg-db-from-api')).body.Counters;
        assert.ok(counters.AllowedPackets > 0 && counters.DroppedPackets > 0, JSON.stringify(counters));
      } finally {
        assert.equal((await apiJson(d, 'DELETE', '/arca/v1/policies/wg-db-from-api')).status, 204);
      }
      assert.ok(await reaches('pother', db, 5432), 'reopened once the policy is deleted');
    } finally {
      await d.docker(['rm', '-f', ...names]);
      await d.docker(['network', 'rm', net]);
    }
  });

  it('a compose project with driver: wireguard networks comes up, services talk by name, down leaves nothing', { skip: skipWithoutCompose }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-wg-compose-'));
    const compose = (...args: string[]) => exec(COMPOSE, ['-p', 'wgproj', ...args], d.env, dir);
    try {
      writeFileSync(
        join(dir, 'docker-compose.yml'),
        [
          'version: "2.4"',
          'services:',
          '  web:',
          `    image: ${TEST_IMAGE}`,
          '    command: ["sh", "-c", "echo hello-wireguard > /tmp/index.html && httpd -f -p 80 -h /tmp"]',
          '    networks: [front, back]',
          '  client:',
          `    image: ${TEST_IMAGE}`,
          '    command: ["sleep", "600"]',
          '    networks: [front]',
          '  worker:',
          `    image: ${TEST_IMAGE}`,
          '    command: ["sleep", "600"]',
          '    networks: [back]',
          'networks:',
          '  front:',
          '    driver: wireguard',
          '  back:',
          '    driver: wireguard',
          '    ipam:',
          '      config:',
          '        - subnet: 10.203.60.0/24',
        ].join('\n') + '\n',
      );
      const hiddenBefore = hiddenNamespaces(d).sort();
      const pidsBefore = [...pidFiles(d).keys()].sort();
      const up = await compose('up', '-d');
      assert.equal(up.code, 0, up.stderr);
      const ids = (await d.dockerOk(['network', 'ls', '--filter', 'name=wgproj_', '--format', '{{.ID}} {{.Driver}}'])).split('\n');
      assert.equal(ids.length, 2, ids.join('\n'));
      for (const l of ids) assert.match(l, / wireguard$/);
      const netIds = (await d.dockerOk(['network', 'inspect', '-f', '{{.Id}}', 'wgproj_front', 'wgproj_back'])).split('\n');
      for (const svc of ['client', 'worker']) {
        const got = await eventually(`${svc} to get web by name`, async () => {
          const r = await compose('exec', '-T', svc, 'sh', '-c', 'timeout 3 wget -qO- http://web/index.html');
          return r.code === 0 ? r.stdout : undefined;
        }, 15_000);
        assert.match(got, /hello-wireguard/);
      }
      // front and back stay apart.
      const workerIp = await ipOf(d, 'wgproj_worker_1', 'wgproj_back');
      assert.equal((await compose('exec', '-T', 'client', 'ping', '-c', '1', '-W', '1', workerIp)).code === 0, false, 'client (front) must not reach worker (back)');
      const down = await compose('down');
      assert.equal(down.code, 0, down.stderr);
      assert.equal(await d.dockerOk(['network', 'ls', '--filter', 'name=wgproj_', '--format', '{{.Name}}']), '');
      const links = hostLinkNames(d);
      for (const id of netIds) assert.ok(!links.includes(bridgeOf(id)), `bridge of ${id.slice(0, 12)} removed`);
      assert.deepEqual(hiddenNamespaces(d).sort(), hiddenBefore, 'the project\'s hidden namespaces removed');
      assert.deepEqual([...pidFiles(d).keys()].sort(), pidsBefore, 'the project\'s wireguard-go pidfiles removed');
    } finally {
      await compose('down').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('what a crash between making a tunnel and recording it left (hidden netns, wireguard-go with pidfile, host veth) is gone after start-up', async () => {
    const ghost = randomBytes(32).toString('hex');
    const names = endpointNames(daemonTag(d.root), ghost);
    const { pidFile } = runtimePaths(d.execRoot, names.wgIf);
    const bridge = bridgeOf(netId);
    const keep = Object.fromEntries([...pidFiles(d)].filter(([ifname, pid]) => wireguardGoIf(pid) === ifname));
    let planted: number | undefined;
    const run = (argv: string[]): void => {
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
      assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
    };
    try {
      await d.restart({
        signal: 'SIGKILL',
        whileStopped: async () => {
          run(['ip', 'netns', 'add', names.netns]);
          run(['ip', '-n', names.netns, 'link', 'set', 'lo', 'up']);
          run(['ip', 'link', 'add', names.hostVeth, 'netns', d.hostNs, 'type', 'veth', 'peer', 'name', 'u0', 'netns', names.netns]);
          run(['ip', '-n', d.hostNs, 'link', 'set', names.hostVeth, 'master', bridge, 'up']);
          // As the driver starts it: nsenter execs wireguard-go, so the child's PID is wireguard-go's.
          const child = spawn('nsenter', [`--net=/run/netns/${names.netns}`, '--', 'wireguard-go', names.wgIf], {
            env: { ...process.env, WG_PROCESS_FOREGROUND: '1' },
            stdio: 'ignore',
            detached: true,
          });
          child.unref();
          planted = child.pid!;
          await eventually('the planted wireguard-go to listen', () => (existsSync(uapiSocketPath(names.wgIf)) ? true : undefined), 5000);
          assert.equal(wireguardGoIf(planted), names.wgIf);
          mkdirSync(join(d.execRoot, 'wireguard'), { recursive: true });
          writeFileSync(pidFile, `${planted}\n`);
        },
      });
      await eventually('the orphan to be swept', () => {
        const left = [
          existsSync(`/run/netns/${names.netns}`) && 'netns',
          processesOf(names.wgIf).length > 0 && 'process',
          existsSync(pidFile) && 'pidfile',
          existsSync(uapiSocketPath(names.wgIf)) && 'socket',
          hostLinkNames(d).includes(names.hostVeth) && 'veth',
        ].filter(Boolean);
        return left.length ? undefined : true;
      }, 10_000).catch(() => {
        assert.fail(
          `left after start-up: ${[
            existsSync(`/run/netns/${names.netns}`) && `netns ${names.netns}`,
            processesOf(names.wgIf).length > 0 && `wireguard-go ${names.wgIf} (pid ${processesOf(names.wgIf).join(',')})`,
            existsSync(pidFile) && `pidfile ${pidFile}`,
            existsSync(uapiSocketPath(names.wgIf)) && `socket ${uapiSocketPath(names.wgIf)}`,
            hostLinkNames(d).includes(names.hostVeth) && `veth ${names.hostVeth}`,
          ]
            .filter(Boolean)
            .join(', ')}`,
        );
      });
      const now = Object.fromEntries([...pidFiles(d)].filter(([ifname, pid]) => wireguardGoIf(pid) === ifname));
      assert.deepEqual(now, keep, 'the known tunnels were adopted, untouched');
      assert.ok(await pings('wa', ip.wb!), 'known endpoints still talk');
    } finally {
      if (planted && wireguardGoIf(planted) === names.wgIf) process.kill(planted, 'SIGKILL');
      spawnSync('ip', ['-n', d.hostNs, 'link', 'del', names.hostVeth]);
      spawnSync('ip', ['netns', 'del', names.netns]);
      rmSync(pidFile, { force: true });
      if (planted && !processesOf(names.wgIf).length) rmSync(uapiSocketPath(names.wgIf), { force: true });
    }
  });
});
