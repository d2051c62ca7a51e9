/**
 * A tiny traffic tool for the kernel tests, run inside a namespace with `nsenter`:
 *
 *   node net-probe.js serve TAG TCP_PORTS UDP_PORTS   (comma lists, '-' for none)
 *     answers every TCP connection and UDP datagram with "TAG <peer address>"; prints "ready".
 *   node net-probe.js connect tcp|udp HOST PORT TIMEOUT_MS [SOURCE]
 *     prints the answer; exit 2 on timeout, 3 on an error (e.g. connection refused).
 *   node net-probe.js echo PORT
 *     a TCP server echoing every line back on connections that stay open; prints "ready".
 *   node net-probe.js chat HOST PORT
 *     one long-lived TCP connection: each stdin line is sent, each line that comes back printed.
 *
 * The echoed peer address is what proves NAT: the server says who it thinks called.
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, isIPv6 } from 'node:net';

function ports(list: string | undefined): number[] {
  return !list || list === '-' ? [] : list.split(',').map(Number);
}

function plain(addr: string | undefined): string {
  return (addr ?? '?').replace(/^::ffff:/, '');
}

async function serve(tag: string, tcp: number[], udp: number[]): Promise<void> {
  const listening: Promise<void>[] = [];
  for (const port of tcp) {
    const server = createServer((sock) => {
      sock.on('error', () => {});
      sock.end(`${tag} ${plain(sock.remoteAddress)}\n`);
    });
    listening.push(new Promise((resolve) => server.listen({ port, host: '::' }, resolve)));
  }
  for (const port of udp) {
    const sock = createSocket({ type: 'udp6' });
    sock.on('message', (_msg, rinfo) => sock.send(`${tag} ${plain(rinfo.address)}\n`, rinfo.port, rinfo.address));
    listening.push(new Promise((resolve) => sock.bind({ port, address: '::' }, resolve)));
  }
  await Promise.all(listening);
  process.stdout.write('ready\n');
}

function finish(code: number, text: string): never {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  process.exit(code);
}

function connectTcp(host: string, port: number, timeoutMs: number, source?: string): void {
  let got = '';
  const sock = connect({ host, port, ...(source ? { localAddress: source } : {}) });
  setTimeout(() => finish(2, 'timeout'), timeoutMs);
  sock.on('data', (b) => (got += b.toString()));
  sock.on('end', () => finish(0, got));
  sock.on('error', (e: NodeJS.ErrnoException) => finish(3, e.code ?? e.message));
}

function connectUdp(host: string, port: number, timeoutMs: number, source?: string): void {
  const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  setTimeout(() => finish(2, 'timeout'), timeoutMs);
  sock.on('message', (msg) => finish(0, msg.toString()));
  sock.on('error', (e: NodeJS.ErrnoException) => finish(3, e.code ?? e.message));
  const send = (): void => sock.send('hello', port, host);
  if (source) sock.bind({ address: source }, send);
  else send();
}

function echo(port: number): void {
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  server.listen({ port, host: '::' }, () => process.stdout.write('ready\n'));
}

function chat(host: string, port: number): void {
  const sock = connect({ host, port });
  sock.on('connect', () => process.stdout.write('connected\n'));
  sock.on('data', (b) => process.stdout.write(b));
  sock.on('error', (e: NodeJS.ErrnoException) => finish(3, e.code ?? e.message));
  process.stdin.on('data', (b) => sock.write(b));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') {
  await serve(args[0] ?? 'server', ports(args[1]), ports(args[2]));
} else if (mode === 'connect') {
  const [proto, host, port, timeout, source] = args;
  if (proto === 'udp') connectUdp(host!, Number(port), Number(timeout ?? 1000), source);
  else connectTcp(host!, Number(port), Number(timeout ?? 1000), source);
} else if (mode === 'echo') {
  echo(Number(args[0]));
} else if (mode === 'chat') {
  chat(args[0]!, Number(args[1]));
} else {
  finish(64, 'usage: net-probe serve TAG TCP UDP | connect tcp|udp HOST PORT TIMEOUT_MS');
}
