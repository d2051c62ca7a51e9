/**
 * `node dist/bench/filterednat-rss.js [--engines N] [--fast-path on|off]`: what one more VM costs
 * the daemon, which runs every VM's engine in its one process. One engine is connected to a fake
 * QEMU (a unix socket in this process) and has carried a flow both ways; then N more do the same,
 * and the process's RSS grows by what N engines cost (their objects, buffers, host sockets, and
 * with the fast path a thread each: its stack and buffers). Prints one JSON object.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FilteredNatEngine } from '../src/filterednat/filtered-nat-engine.js';
import { QemuStreamClient } from '../src/filterednat/qemu-stream-client.js';
import { writeIpv4Header, PROTO_UDP } from '../src/filterednat/ipv4.js';
import { writeUdpHeader } from '../src/filterednat/udp.js';
import { logger, setLogLevel } from '../src/log.js';

const GUEST_MAC = Buffer.from('525400123456', 'hex');
const GW_MAC = Buffer.from('02000a4d0001', 'hex');

function udpFrame(dstPort: number, payload: number): Buffer {
  const f = Buffer.alloc(4 + 14 + 20 + 8 + payload);
  f.writeUInt32BE(f.length - 4, 0);
  GW_MAC.copy(f, 4);
  GUEST_MAC.copy(f, 10);
  f.writeUInt16BE(0x0800, 16);
  writeIpv4Header(f, 18, 20 + 8 + payload, 0, PROTO_UDP, 0x0a4d0002, 0x0a4d0001);
  writeUdpHeader(f, 38, 0x0a4d0002, 40000, 0x0a4d0001, dstPort, payload);
  return f;
}

const rssKb = (): number => Math.round(process.memoryUsage().rss / 1024);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { engines: { type: 'string', default: '10' }, 'fast-path': { type: 'string', default: 'on' } } });
  const n = Number(values.engines);
  const fast = values['fast-path'] === 'on';
  const dir = mkdtempSync(join(os.tmpdir(), 'arca-fnat-rss-'));
  const sink = dgram.createSocket('udp4');
  sink.on('message', (m, r) => sink.send(m, r.port, r.address));
  sink.bind(0, '127.0.0.1');
  await once(sink, 'listening');
  const port = sink.address().port;
  setLogLevel('warn');
  const log = logger('arca:vmnet');
  const vms: Array<{ engine: FilteredNatEngine; client: QemuStreamClient; server: net.Server; conn?: net.Socket }> = [];
  const burst = Buffer.concat(Array.from({ length: 64 }, () => udpFrame(port, 1200)));

  /** One more VM: its engine connected, 65 large frames forwarded and their replies read back. */
  async function addVm(i: number): Promise<void> {
    const path = join(dir, `vm${i}.sock`);
    const server = net.createServer();
    const got = new Promise<net.Socket>((r) => server.once('connection', r));
    server.listen(path);
    await once(server, 'listening');
    const engine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: fast });
    const client = new QemuStreamClient(path, engine, log, (err) => {
      throw err;
    });
    client.start();
    const conn = await got;
    let bytes = 0;
    conn.on('data', (b: Buffer) => (bytes += b.length));
    const vm = { engine, client, server, conn };
    vms.push(vm);
    conn.write(udpFrame(port, 1200));
    for (let k = 0; k < 200 && bytes === 0; k++) await sleep(5);
    conn.write(burst);
    const want = 65 * (4 + 14 + 20 + 8 + 1200);
    for (let k = 0; k < 400 && bytes < want; k++) await sleep(5);
  }

  const settle = async (): Promise<number> => {
    await sleep(200);
    (globalThis as { gc?: () => void }).gc?.();
    await sleep(100);
    return rssKb();
  };
  await addVm(0);
  const base = await settle();
  for (let i = 1; i <= n; i++) await addVm(i);
  const after = await settle();
  const threads = readdirSync('/proc/self/task').length;
  const out = {
    fast_path: vms[0]!.engine.fastPath,
    engines_added: n,
    rss_mb_one_engine: Math.round(base / 102.4) / 10,
    rss_mb_after: Math.round(after / 102.4) / 10,
    rss_kb_per_extra_engine: Math.round((after - base) / n),
    threads_in_process: threads,
    forwarded_by_thread: vms.reduce((a, v) => a + (v.engine.fastPathCounters()?.forwarded ?? 0), 0),
  };
  for (const v of vms) {
    v.client.stop();
    v.engine.close();
    v.conn?.destroy();
    v.server.close();
  }
  sink.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out) + '\n');
}

void main();
