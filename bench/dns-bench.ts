/**
 * DNS throughput: fires A queries over UDP at a server, keeping `concurrency` in flight, and
 * reports answers per second.
 *
 * As a library, {@link benchDns} is what the project benchmark calls (against 127.0.0.11 inside
 * a container's namespace). As a script it benchmarks a local {@link DnsServer} run in a child
 * process, so that client and server each have their own event loop as they would in use:
 *
 *   node dist/bench/dns-bench.js [--runs 3] [--duration 3000] [--concurrency 64]
 *   node dist/bench/dns-bench.js ADDRESS PORT [--name web] [--source 172.18.0.3] ...
 */
import { createSocket, type Socket } from 'node:dgram';
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeMessage } from '../src/network/dns/dns-codec.js';

export interface DnsBenchOptions {
  /** The name to ask for (type A); default `web`. */
  name?: string;
  /** Local address to send from (the server identifies containers by source address). */
  sourceAddress?: string;
  /** UDP sockets to spread the load over; default min(concurrency, 4). */
  sockets?: number;
}

export interface DnsBenchResult {
  /** Answers per second over the measured window. */
  qps: number;
  answered: number;
  /** Queries re-sent after going unanswered for a second (lost or dropped). */
  timeouts: number;
  /** Answers whose rcode was not NOERROR. */
  errors: number;
  durationMs: number;
}

const RESEND_AFTER_MS = 1000;

/** Fires A queries for `durationMs` with `concurrency` in flight; returns queries per second. */
export async function benchDns(address: string, port: number, durationMs: number, concurrency: number): Promise<number>;
export async function benchDns(address: string, port: number, durationMs: number, concurrency: number, options: DnsBenchOptions): Promise<DnsBenchResult>;
export async function benchDns(address: string, port: number, durationMs: number, concurrency: number, options?: DnsBenchOptions): Promise<number | DnsBenchResult> {
  const result = await runBench(address, port, durationMs, concurrency, options ?? {});
  return options ? result : result.qps;
}

async function runBench(address: string, port: number, durationMs: number, concurrency: number, options: DnsBenchOptions): Promise<DnsBenchResult> {
  const name = options.name ?? 'web';
  const family = address.includes(':') ? 'udp6' : 'udp4';
  const nSockets = Math.max(1, Math.min(options.sockets ?? 4, concurrency));
  let answered = 0;
  let timeouts = 0;
  let errors = 0;
  let running = true;

  interface Slot {
    query: Buffer;
    sentAt: number;
    socket: Socket;
  }
  const sockets: Socket[] = [];
  const slotsBySocket: Map<number, Slot>[] = [];
  for (let i = 0; i < nSockets; i++) {
    const s = createSocket(family);
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind({ port: 0, ...(options.sourceAddress ? { address: options.sourceAddress } : {}) }, () => {
        s.off('error', rej);
        res();
      });
    });
    sockets.push(s);
    slotsBySocket.push(new Map());
  }
  const send = (slot: Slot): void => {
    slot.sentAt = Date.now();
    slot.socket.send(slot.query, port, address);
  };
  for (let i = 0; i < concurrency; i++) {
    const si = i % nSockets;
    const id = i + 1;
    const query = encodeMessage({
      header: { id, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
      questions: [{ name, type: 1, class: 1 }],
      answers: [],
      authorities: [],
      additionals: [],
    });
    slotsBySocket[si]!.set(id, { query, sentAt: 0, socket: sockets[si]! });
  }
  sockets.forEach((s, si) => {
    const slots = slotsBySocket[si]!;
    s.on('error', () => {});
    s.on('message', (msg) => {
      if (msg.length < 12) return;
      const slot = slots.get(msg.readUInt16BE(0));
      if (!slot) return;
      answered++;
      if ((msg[3]! & 0xf) !== 0) errors++;
      if (running) send(slot);
    });
  });
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const slots of slotsBySocket)
      for (const slot of slots.values())
        if (now - slot.sentAt > RESEND_AFTER_MS) {
          timeouts++;
          send(slot);
        }
  }, 250);

  const start = process.hrtime.bigint();
  for (const slots of slotsBySocket) for (const slot of slots.values()) send(slot);
  await new Promise((r) => setTimeout(r, durationMs));
  const counted = answered;
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  running = false;
  clearInterval(watchdog);
  for (const s of sockets) s.close();
  return { qps: Math.round((counted * 1000) / elapsedMs), answered: counted, timeouts, errors, durationMs: Math.round(elapsedMs) };
}

// ---------------------------------------------------------------------------------------------
// Script

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
}

async function serveForBench(): Promise<void> {
  const { DnsServer } = await import('../src/network/dns/dns-server.js');
  const server = await DnsServer.start({
    address: '127.0.0.1',
    port: 0,
    snapshot: {
      upstreams: [],
      networks: [
        {
          id: 'bench',
          name: 'bench',
          internal: false,
          endpoints: [
            { containerId: 'client', names: ['client'], ipv4: '127.0.0.1' },
            { containerId: 'web', names: ['web'], ipv4: '10.88.0.2' },
            ...Array.from({ length: 500 }, (_, i) => ({ containerId: `c${i}`, names: [`c${i}`], ipv4: `10.88.${(i >> 8) + 1}.${(i & 255) + 1}` })),
          ],
        },
      ],
    },
  });
  process.send!({ port: server.port });
  process.on('disconnect', () => void server.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--serve') return serveForBench();
  const runs = Number(flag(args, 'runs', '3'));
  const durationMs = Number(flag(args, 'duration', '3000'));
  const concurrency = Number(flag(args, 'concurrency', '64'));
  const name = flag(args, 'name', 'web');
  const source = flag(args, 'source', '');
  let address = args[0] && !args[0].startsWith('--') ? args[0] : '';
  let port = Number(args[1] ?? 53);
  let child: ReturnType<typeof fork> | undefined;
  if (!address) {
    child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: 'inherit' });
    port = await new Promise<number>((res) => child!.once('message', (m) => res((m as { port: number }).port)));
    address = '127.0.0.1';
  }
  const results: DnsBenchResult[] = [];
  await benchDns(address, port, 500, concurrency, { name, ...(source ? { sourceAddress: source } : {}) }); // warm-up
  for (let i = 0; i < runs; i++) {
    const r = await benchDns(address, port, durationMs, concurrency, { name, ...(source ? { sourceAddress: source } : {}) });
    results.push(r);
    console.log(JSON.stringify({ run: i + 1, ...r }));
  }
  const sorted = results.map((r) => r.qps).sort((a, b) => a - b);
  const loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  console.log(JSON.stringify({ medianQps: sorted[Math.floor(sorted.length / 2)], runs, durationMs, concurrency, loadavg }));
  child?.disconnect();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
