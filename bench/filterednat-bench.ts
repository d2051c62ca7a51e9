/**
 * `node dist/bench/filterednat-bench.js [--seconds S]`: FilteredNAT's engine alone, fed from an
 * in-process generator (length-prefixed frames in 64 KiB chunks, as a busy QEMU socket delivers
 * them), on the drop path (TCP frames: parse, classify, count) and the forward path (allowlisted
 * UDP to a sink in a child process that counts what arrives: one sendmmsg per batch of a chunk's
 * datagrams with the native addon, one dgram `send` per frame without it; `host_sockets` says
 * which). Prints one JSON object. It measures the engine, not the guest (a TCG guest makes ~15k
 * frames/s).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { FilteredNatEngine } from '../src/filterednat/filtered-nat-engine.js';

const GUEST_MAC = Buffer.from('525400123456', 'hex');
const GW_MAC = Buffer.from('02000a4d0001', 'hex');

function checksum(b: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** One framed Ethernet/IPv4 frame from the guest to 10.77.0.1 with `proto` and `l4`. */
function frame(proto: number, l4: Buffer): Buffer {
  const f = Buffer.alloc(4 + 14 + 20 + l4.length);
  f.writeUInt32BE(f.length - 4, 0);
  GW_MAC.copy(f, 4);
  GUEST_MAC.copy(f, 10);
  f.writeUInt16BE(0x0800, 16);
  const ip = f.subarray(18, 38);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = proto;
  ip.writeUInt32BE(0x0a4d0002, 12);
  ip.writeUInt32BE(0x0a4d0001, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  l4.copy(f, 38);
  return f;
}

function udpFrame(srcPort: number, dstPort: number, payload: number): Buffer {
  const u = Buffer.alloc(8 + payload, 0x61);
  u.writeUInt16BE(srcPort, 0);
  u.writeUInt16BE(dstPort, 2);
  u.writeUInt16BE(u.length, 4);
  u.writeUInt16BE(0, 6);
  const pseudo = (0x0a4d + 0x0002 + 0x0a4d + 0x0001 + 17 + u.length);
  let c = checksum(u, pseudo);
  if (c === 0) c = 0xffff;
  u.writeUInt16BE(c, 6);
  return frame(17, u);
}

/** 64 KiB chunks of back-to-back frames. */
function chunks(f: Buffer): Buffer[] {
  const per = Math.floor(65536 / f.length);
  const one = Buffer.concat(Array.from({ length: per }, () => f));
  return Array.from({ length: 16 }, () => Buffer.from(one));
}

interface PathResult {
  frames_per_s: number;
  us_per_frame: number;
  /** Time per 64 KiB chunk divided by its frames: p50 and p99 over chunks. */
  chunk_us_per_frame_p50: number;
  chunk_us_per_frame_p99: number;
}

async function drive(engine: FilteredNatEngine, input: Buffer[], framesPerChunk: number, seconds: number): Promise<PathResult> {
  const perChunk: number[] = [];
  let frames = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let i = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    engine.receive(input[i++ % input.length]!);
    const t1 = process.hrtime.bigint();
    perChunk.push(Number(t1 - t0) / 1000 / framesPerChunk);
    frames += framesPerChunk;
    // Let libuv run the sends and the timers, as a real socket read loop would.
    if (i % 4 === 0) await new Promise((r) => setImmediate(r));
    if (t1 > end) break;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  perChunk.sort((a, b) => a - b);
  const q = (p: number): number => Number(perChunk[Math.min(perChunk.length - 1, Math.floor(p * perChunk.length))]!.toFixed(2));
  return { frames_per_s: Math.round(frames / secs), us_per_frame: Number(((secs * 1e6) / frames).toFixed(2)), chunk_us_per_frame_p50: q(0.5), chunk_us_per_frame_p99: q(0.99) };
}

const SINK = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
let n = 0;
s.on('message', () => n++);
s.bind(0, '127.0.0.1', () => process.send({ port: s.address().port }));
process.on('message', () => { process.send({ received: n }); s.close(); process.exit(0); });
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' } } });
  const seconds = Number(values.seconds);
  const load = os.loadavg().map((l) => Number(l.toFixed(2)));

  const dropEngine = new FilteredNatEngine({ allow: ['127.0.0.1:9/udp'] });
  dropEngine.attach({ write: () => true });
  const tcp = frame(6, Buffer.alloc(20));
  const drop = await drive(dropEngine, chunks(tcp), Math.floor(65536 / tcp.length), seconds);
  const dropped = dropEngine.stats.dropped.tcp;
  dropEngine.close();

  const sink = spawn(process.execPath, ['-e', SINK], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const [{ port }] = (await once(sink, 'message')) as [{ port: number }];
  const fwdEngine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`] });
  fwdEngine.attach({ write: () => true });
  const udp = udpFrame(40000, port, 64);
  // Open the flow before timing (its socket connects asynchronously).
  fwdEngine.receive(udp);
  await new Promise((r) => setTimeout(r, 50));
  const forward = await drive(fwdEngine, chunks(udp), Math.floor(65536 / udp.length), seconds);
  await new Promise((r) => setTimeout(r, 300));
  sink.send('done');
  const [{ received }] = (await once(sink, 'message')) as [{ received: number }];
  const forwarded = fwdEngine.stats.forwarded;
  fwdEngine.close();

  // What one more VM costs: engines with a lease given and one open flow each.
  const heap0 = process.memoryUsage().heapUsed;
  const many: FilteredNatEngine[] = [];
  for (let k = 0; k < 50; k++) {
    const e = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`] });
    e.attach({ write: () => true });
    e.receive(udpFrame(40000, port, 64));
    many.push(e);
  }
  await new Promise((r) => setTimeout(r, 100));
  const perEngineKb = Math.round((process.memoryUsage().heapUsed - heap0) / 50 / 1024);
  for (const e of many) e.close();

  const rssMb = Number((process.memoryUsage().rss / 1048576).toFixed(1));
  process.stdout.write(
    JSON.stringify(
      {
        node: process.version,
        cpus: os.cpus().length,
        loadavg_at_start: load,
        note: 'measured while other sessions ran builds and tests on the same 2 vCPUs: figures are noisy and pessimistic',
        drop_path_tcp: { ...drop, dropped },
        forward_path_udp_64B: { ...forward, host_sockets: fwdEngine.hostSockets, forwarded, received_by_sink: received, send_errors: fwdEngine.stats.sendErrors },
        heap_kb_per_engine_with_one_flow: perEngineKb,
        rss_mb_after: rssMb,
      },
      null,
      2,
    ) + '\n',
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
