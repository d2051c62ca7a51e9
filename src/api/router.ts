import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { InvalidParameter } from '../errors.js';

/** Oldest and newest Engine API versions arca speaks. */
export const MIN_API_VERSION = '1.24';
export const MAX_API_VERSION = '1.51';

export function compareVersions(a: string, b: string): number {
  const [amaj = 0, amin = 0] = a.split('.').map(Number);
  const [bmaj = 0, bmin = 0] = b.split('.').map(Number);
  return amaj !== bmaj ? amaj - bmaj : amin - bmin;
}

/** What a handler sees of one request. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters, in order of the pattern's groups, URL-decoded. */
  params: string[];
  query: URLSearchParams;
  /** The API version of the request (`/v1.47/...`), or the newest when unversioned. */
  version: string;
  /** Reads and parses the JSON body; `{}` when empty. */
  json<T = Record<string, unknown>>(): Promise<T>;
  /** Reads the raw body. */
  body(): Promise<Buffer>;
  /** Sends a JSON answer. */
  send(status: number, value: unknown): void;
  /** Sends a status with no body. */
  empty(status: number): void;
}

/** A request that asked to take over the connection (`Upgrade: tcp`), for attach and exec. */
export interface HijackCtx {
  req: IncomingMessage;
  socket: Duplex;
  /** Bytes the HTTP parser had already read past the headers. */
  head: Buffer;
  params: string[];
  query: URLSearchParams;
  version: string;
  /** Reads a Content-Length body from head + socket (exec start sends JSON). */
  body(): Promise<Buffer>;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;
export type HijackHandler = (ctx: HijackCtx) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
  hijack?: HijackHandler;
}

/** Method + path-pattern table. Patterns are written with `{name}` for one path segment. */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, path: string, handler: Handler, hijack?: HijackHandler): void {
    const src = path
      .split('/')
      .map((seg) => (seg.startsWith('{') ? (seg === '{*}' ? '(.+)' : '([^/]+)') : seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
      .join('/');
    this.routes.push({ method, pattern: new RegExp(`^${src}$`), handler, hijack });
  }
  get(p: string, h: Handler): void {
    this.add('GET', p, h);
  }
  post(p: string, h: Handler, hijack?: HijackHandler): void {
    this.add('POST', p, h, hijack);
  }
  delete(p: string, h: Handler): void {
    this.add('DELETE', p, h);
  }
  head(p: string, h: Handler): void {
    this.add('HEAD', p, h);
  }
  put(p: string, h: Handler): void {
    this.add('PUT', p, h);
  }

  /** Finds the route for a method and an unversioned path. `methodMismatch` tells 405 from 404. */
  match(method: string, path: string): { route?: Route; params: string[]; methodMismatch: boolean } {
    let methodMismatch = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      if (route.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { route, params: m.slice(1).map((s) => decodeURIComponent(s)), methodMismatch: false };
    }
    return { params: [], methodMismatch };
  }
}

/** Splits `/v1.47/containers/json` into version and path; checks the version's range. */
export function splitVersion(rawPath: string): { version: string; path: string } {
  const m = /^\/v([0-9]+\.[0-9]+)(\/.*)$/.exec(rawPath);
  if (!m) return { version: MAX_API_VERSION, path: rawPath };
  const version = m[1]!;
  if (compareVersions(version, MAX_API_VERSION) > 0) {
    throw new InvalidParameter(
      `client version ${version} is too new. Maximum supported API version is ${MAX_API_VERSION}`,
    );
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw new InvalidParameter(
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  }
  return { version, path: m[2]! };
}

/** Docker's boolean query values: `1`, `true`, `True`; anything else is false. */
export function qbool(q: URLSearchParams, name: string, dflt = false): boolean {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  return v === '1' || v.toLowerCase() === 'true';
}

/** Parses Docker's `filters` query: `{"name":{"x":true}}` or the old `{"name":["x"]}`. */
export function parseFilters(q: URLSearchParams): Map<string, string[]> {
  const raw = q.get('filters');
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidParameter(`invalid filter: ${raw}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new InvalidParameter(`invalid filter: ${raw}`);
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(v)) out.set(k, v.map(String));
    else if (typeof v === 'object' && v !== null) out.set(k, Object.keys(v).filter((x) => (v as Record<string, unknown>)[x]));
    else throw new InvalidParameter(`invalid filter: ${raw}`);
  }
  return out;
}
