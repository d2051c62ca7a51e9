import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { errorMessage, toHttpStatus, InvalidParameter, NotFound } from '../errors.js';
import { logger } from '../log.js';
import { Router, splitVersion, MAX_API_VERSION, type Ctx, type HijackCtx } from './router.js';
import type { Daemon } from '../daemon.js';
import { registerDiskUsage, registerSystem } from './system.js';
import { registerContainers } from './containers.js';
import { registerExec } from './exec.js';
import { registerImages } from './images.js';
import { registerVolumes } from './volumes.js';
import { registerNetworks } from './networks.js';
import { registerSwarm } from './swarm.js';
import { registerEvents } from './events.js';
import { registerArchive } from './archive.js';
import { registerBuild } from './build.js';
import { registerCommit } from './commit.js';
import { registerPolicies } from './policies.js';
import { registerEgress } from './egress.js';

const log = logger('arca:api');

const COMMON_HEADERS = {
  'Api-Version': MAX_API_VERSION,
  'Docker-Experimental': 'false',
  Ostype: 'linux',
  Server: `Docker/28.5.2 (linux) arca`,
};

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(buf: Buffer): Record<string, unknown> {
  if (buf.length === 0) return {};
  const text = buf.toString('utf8').trim();
  if (text === '' || text === 'null') return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new InvalidParameter(`invalid JSON: ${errorMessage(e)}`);
  }
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = toHttpStatus(err);
  if (status >= 500) log.error('request failed', { error: errorMessage(err) });
  if (res.headersSent) {
    // Mid-stream failure: the status is gone; say it in the stream as Docker does for JSON streams.
    try {
      res.end(JSON.stringify({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) }) + '\n');
    } catch {
      /* connection gone */
    }
    return;
  }
  if (status === 304) {
    res.writeHead(304, COMMON_HEADERS);
    res.end();
    return;
  }
  const body = JSON.stringify({ message: errorMessage(err) }) + '\n';
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export class ApiServer {
  readonly router = new Router();
  private server?: Server;
  /** Upgraded (attach/exec) connections: the HTTP server no longer tracks them. */
  private readonly hijacked = new Set<Duplex>();

  constructor(private readonly daemon: Daemon) {
    registerSystem(this.router, daemon);
    registerDiskUsage(this.router, daemon);
    registerContainers(this.router, daemon);
    registerArchive(this.router, daemon);
    registerCommit(this.router, daemon);
    registerExec(this.router, daemon);
    registerImages(this.router, daemon);
    registerVolumes(this.router, daemon);
    registerNetworks(this.router, daemon);
    registerSwarm(this.router);
    registerEvents(this.router, daemon);
    registerBuild(this.router, daemon);
    registerPolicies(this.router, daemon);
    registerEgress(this.router, daemon);
  }

  async listen(socketPath: string): Promise<void> {
    if (existsSync(socketPath)) unlinkSync(socketPath);
    const server = createServer({ keepAlive: true }, (req, res) => void this.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 0;
    server.requestTimeout = 0;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o660);
    log.info(`API listening on unix://${socketPath}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.hijacked) s.destroy();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(COMMON_HEADERS)) res.setHeader(k, v);
    const t0 = performance.now();
    res.once('finish', () => log.debug(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(1)}ms`));
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const { version, path } = splitVersion(url.pathname);
      const method = req.method ?? 'GET';
      const { route, params, methodMismatch } = this.router.match(method, path);
      if (!route) {
        if (methodMismatch) {
          res.writeHead(405, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ message: 'method not allowed' }) + '\n');
          return;
        }
        throw new NotFound(`page not found`);
      }
      let bodyBuf: Buffer | undefined;
      const body = async (): Promise<Buffer> => (bodyBuf ??= await readBody(req));
      const ctx: Ctx = {
        req,
        res,
        params,
        query: url.searchParams,
        version,
        body,
        json: async <T>() => parseJson(await body()) as T,
        send: (status, value) => {
          const text = JSON.stringify(value) + '\n';
          res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
        },
        empty: (status) => {
          res.writeHead(status);
          res.end();
        },
      };
      await route.handler(ctx);
    } catch (err) {
      sendError(res, err);
    }
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    this.hijacked.add(socket);
    socket.once('close', () => this.hijacked.delete(socket));
    const fail = (err: unknown): void => {
      const status = toHttpStatus(err);
      const body = JSON.stringify({ message: errorMessage(err) }) + '\n';
      socket.end(
        `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 409 ? 'Conflict' : status === 400 ? 'Bad Request' : 'Error'}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nApi-Version: ${MAX_API_VERSION}\r\n\r\n${body}`,
      );
    };
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const { version, path } = splitVersion(url.pathname);
      const { route, params } = this.router.match(req.method ?? 'GET', path);
      if (!route?.hijack) throw new NotFound('page not found');
      let pending = head;
      const ctx: HijackCtx = {
        req,
        socket,
        head,
        params,
        query: url.searchParams,
        version,
        body: () => readUpgradeBody(req, socket, pending, (rest) => (pending = rest)).then((b) => {
          ctx.head = pending;
          return b;
        }),
      };
      await route.hijack(ctx);
    } catch (err) {
      fail(err);
    }
  }
}

/** Reads a Content-Length body that arrives on an upgraded socket, keeping the bytes after it. */
function readUpgradeBody(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  keep: (rest: Buffer) => void,
): Promise<Buffer> {
  const len = Number(req.headers['content-length'] ?? 0);
  if (!len) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    let buf = head;
    const done = (): boolean => {
      if (buf.length < len) return false;
      socket.off('data', onData);
      socket.pause();
      keep(buf.subarray(len));
      resolve(buf.subarray(0, len));
      return true;
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      done();
    };
    if (done()) return;
    socket.on('data', onData);
    socket.once('error', reject);
  });
}
