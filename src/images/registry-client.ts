import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isIP } from 'node:net';
import { NotFound, SystemError, InvalidParameter, ArcaError } from '../errors.js';
import { familiarName, familiarString, type ImageReference } from './reference.js';
import { byteMeter, type ByteProgress } from './byte-meter.js';

/** Credentials from the `X-Registry-Auth` header (base64url JSON). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** A fetched manifest: its exact bytes and their digest. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  json: {
    mediaType?: string;
    schemaVersion?: number;
    manifests?: { digest: string; mediaType?: string; platform?: { os?: string; architecture?: string; variant?: string } }[];
    config?: { digest: string; mediaType?: string; size?: number };
    layers?: { digest: string; mediaType?: string; size?: number; urls?: string[] }[];
  };
}

/** Decodes `X-Registry-Auth`; a missing or undecodable header means anonymous, as in Docker. */
export function decodeRegistryAuth(header: string | undefined): RegistryAuth | undefined {
  return registryAuth(decodeRegistryHeader(header));
}

/** The base64url JSON that Docker's `X-Registry-Auth` and `X-Registry-Config` headers carry; undefined when it is none. */
export function decodeRegistryHeader(header: string | undefined): unknown {
  if (!header) return undefined;
  try {
    return JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** One login as the CLI sends it, its `auth` (base64 `user:password`) read when no username is given. */
export function registryAuth(value: unknown): RegistryAuth | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as RegistryAuth;
  try {
    if (v.auth && !v.username) {
      const plain = Buffer.from(v.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) {
        v.username = plain.slice(0, i);
        v.password = plain.slice(i + 1);
      }
    }
    return v;
  } catch {
    return undefined;
  }
}

/** How long to wait for response headers: an unreachable registry must fail fast. */
const HEADERS_TIMEOUT_MS = 8000;
/** How long a blob download may stall before it is abandoned. */
const STALL_TIMEOUT_MS = 60000;

/** The registry's error body: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"...","detail":...}]}`. */
interface RegistryErrorBody {
  errors?: RegistryError[];
}

interface RegistryError {
  code?: string;
  message?: string;
}

/** The first entry of a registry's error answer (distribution's `errors` list), if it sent one. */
async function firstRegistryError(res: Response): Promise<RegistryError | undefined> {
  try {
    return ((await res.json()) as RegistryErrorBody).errors?.[0];
  } catch {
    return undefined; // not JSON
  }
}

/**
 * A client of one repository on a registry (distribution API v2): anonymous or basic access,
 * and the bearer-token flow (`401` + `WWW-Authenticate: Bearer realm=...` → token → retry).
 */
export class RegistryClient {
  readonly base: string;
  private bearer?: string;
  private useBasic = false;
  /** Set by {@link forPush}: tokens are asked with the push scope. */
  private pushing = false;

  constructor(
    private readonly ref: ImageReference,
    private readonly auth: RegistryAuth | undefined,
    insecureRegistries: string[],
  ) {
    const host = ref.domain === 'docker.io' ? 'registry-1.docker.io' : ref.domain;
    this.base = `${isInsecure(ref.domain, insecureRegistries) ? 'http' : 'https'}://${host}`;
  }

  private get repoPath(): string {
    return this.ref.path;
  }

  /** GETs with authentication, answering one auth challenge. */
  private get(path: string, accept?: string): Promise<Response> {
    return this.request('GET', path, { headers: accept ? { Accept: accept } : {} });
  }

  private async authenticate(challenge: string): Promise<void> {
    const scheme = challenge.split(' ')[0]?.toLowerCase();
    if (scheme === 'basic') {
      this.useBasic = true;
      return;
    }
    if (scheme !== 'bearer') return;
    if (this.auth?.registrytoken) {
      this.bearer = this.auth.registrytoken;
      return;
    }
    const params = parseChallenge(challenge);
    if (!params.realm) return;
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    // A push asks for both rights at once, as Docker does, whatever scope the challenge names.
    u.searchParams.set('scope', this.pushing ? `repository:${this.repoPath}:pull,push` : (params.scope ?? `repository:${this.repoPath}:pull`));
    const headers: Record<string, string> = {};
    if (this.auth?.username) headers.Authorization = basicHeader(this.auth);
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), HEADERS_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(u, { headers, signal: ctrl.signal });
    } catch (e) {
      throw networkError('GET', u.toString(), e, ctrl.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 401 || res.status === 403) {
      throw new ArcaError(`Head "${this.base}/v2/${this.repoPath}/manifests/${this.ref.tag ?? this.ref.digest}": unauthorized: incorrect username or password`);
    }
    if (!res.ok) throw new SystemError(`failed to fetch anonymous token: unexpected status from GET request to ${u}: ${res.status} ${res.statusText}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    this.bearer = body.token ?? body.access_token;
  }

  /** Turns a registry error answer into Docker's pull error. */
  private async failure(res: Response): Promise<never> {
    const first = await firstRegistryError(res);
    const code = first?.code ?? (res.status === 401 ? 'UNAUTHORIZED' : res.status === 404 ? 'NOT_FOUND' : '');
    const text = (c: string): string => `${c.toLowerCase().replace(/_/g, ' ')}: ${first?.message ?? c.toLowerCase().replace(/_/g, ' ')}`;
    switch (code) {
      case 'DENIED':
      case 'UNAUTHORIZED':
        throw new NotFound(
          `pull access denied for ${familiarName(this.ref)}, repository does not exist or may require 'docker login': denied: ${
            code === 'DENIED' && first?.message ? first.message : 'requested access to the resource is denied'
          }`,
        );
      case 'MANIFEST_UNKNOWN':
        throw new NotFound(`manifest for ${familiarString(this.ref)} not found: ${text(code)}`);
      case 'NAME_UNKNOWN':
        throw new NotFound(`repository ${familiarName(this.ref)} not found: ${text(code)}`);
      case 'NOT_FOUND':
        throw new NotFound(`manifest for ${familiarString(this.ref)} not found: manifest unknown: manifest unknown`);
      default:
        throw new SystemError(`received unexpected HTTP status: ${res.status} ${res.statusText}`);
    }
  }

  /** GET /v2/<name>/manifests/<tag|digest>, checking the digest of what came back. */
  async manifest(tagOrDigest: string): Promise<FetchedManifest> {
    const accept = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');
    const res = await this.get(`${this.repoPath}/manifests/${tagOrDigest}`, accept);
    if (!res.ok) await this.failure(res);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (tagOrDigest.includes(':') && tagOrDigest !== digest) throw new SystemError(`manifest verification failed for digest ${tagOrDigest}`);
    let json: FetchedManifest['json'];
    try {
      json = JSON.parse(bytes.toString('utf8')) as FetchedManifest['json'];
    } catch {
      throw new SystemError('invalid manifest format');
    }
    const mediaType = json.mediaType ?? res.headers.get('content-type')?.split(';')[0] ?? '';
    if (mediaType === MEDIA.dockerSchema1 || json.schemaVersion === 1) {
      throw new InvalidParameter(
        `Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of ${familiarString(this.ref)} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2.`,
      );
    }
    return { digest, mediaType: mediaType || (json.manifests ? MEDIA.ociIndex : MEDIA.ociManifest), bytes, json };
  }

  /** A small blob (the image config) into memory, digest-checked. */
  async blobBytes(digest: string): Promise<Buffer> {
    const res = await this.get(`${this.repoPath}/blobs/${digest}`);
    if (!res.ok) await this.failure(res);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) {
      throw new SystemError(`image config verification failed for digest ${digest}`);
    }
    return bytes;
  }

  /** Makes this client ask for push rights. */
  forPush(): this {
    this.pushing = true;
    return this;
  }

  /**
   * One authenticated request with a body made fresh for a retry after an auth challenge.
   * `target` is a path under `/v2/` or an absolute URL (an upload's Location).
   */
  private async request(
    method: string,
    target: string,
    opts: { headers?: Record<string, string>; body?: () => Buffer | Readable; timeoutMs?: number } = {},
  ): Promise<Response> {
    const url = /^https?:/.test(target) ? target : `${this.base}/v2/${target}`;
    const attempt = async (): Promise<Response> => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (this.bearer) headers.Authorization = `Bearer ${this.bearer}`;
      else if (this.useBasic && this.auth?.username) headers.Authorization = basicHeader(this.auth);
      const ctrl = new AbortController();
      const timer = opts.timeoutMs === 0 ? undefined : setTimeout(() => ctrl.abort(), opts.timeoutMs ?? HEADERS_TIMEOUT_MS);
      const b = opts.body?.();
      try {
        return await fetch(url, {
          method,
          headers,
          signal: ctrl.signal,
          redirect: 'follow',
          ...(b === undefined ? {} : Buffer.isBuffer(b) ? { body: b } : { body: Readable.toWeb(b as Readable) as unknown as BodyInit, duplex: 'half' }),
        } as RequestInit);
      } catch (e) {
        throw networkError(method, url, e, ctrl.signal.aborted);
      } finally {
        clearTimeout(timer);
      }
    };
    let res = await attempt();
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      await res.arrayBuffer().catch(() => undefined);
      await this.authenticate(challenge);
      res = await attempt();
    }
    return res;
  }

  /** A push error as Docker words it: the registry's code and message (`denied: ...`). */
  private async pushFailure(res: Response, what: string): Promise<never> {
    const first = await firstRegistryError(res);
    if (first?.code) throw new SystemError(`${first.code.toLowerCase().replace(/_/g, ' ')}: ${first.message ?? ''}`.trim());
    if (res.status === 401) throw new SystemError('unauthorized: authentication required');
    throw new SystemError(`${what}: unexpected status from ${res.url}: ${res.status} ${res.statusText}`);
  }

  /** HEAD /v2/<name>/blobs/<digest>: is the blob there already? */
  async blobExists(digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `${this.repoPath}/blobs/${digest}`);
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return this.pushFailure(res, 'HEAD blob');
  }

  /**
   * Uploads a blob monolithically: POST an upload session, then PUT the bytes with the digest.
   * `open` gives a fresh stream of the bytes each time it is called. With `mountFrom` (another
   * repository of the same registry that has the blob) the registry is first asked to mount it.
   */
  async uploadBlob(
    digest: string,
    size: number,
    open: () => Readable,
    onProgress?: ByteProgress,
    mountFrom?: string,
  ): Promise<'mounted' | 'uploaded'> {
    // A cross-repository mount (the registry links the blob it has under another name) answers
    // 201; when it cannot, it opens a normal upload session instead (202), which is used below.
    const query = mountFrom ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : '';
    const start = await this.request('POST', `${this.repoPath}/blobs/uploads/${query}`, { headers: { 'Content-Length': '0' } });
    await start.arrayBuffer().catch(() => undefined);
    if (mountFrom && start.status === 201) return 'mounted';
    if (start.status !== 202) return this.pushFailure(start, 'starting upload');
    const location = start.headers.get('location');
    if (!location) throw new SystemError('registry answered an upload without a Location');
    const u = new URL(location, this.base);
    u.searchParams.set('digest', digest);
    const res = await this.request('PUT', u.toString(), {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      timeoutMs: 0,
      body: () => {
        const meter = byteMeter(size, onProgress);
        const src = open();
        src.on('error', (e) => meter.destroy(e));
        return src.pipe(meter);
      },
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status !== 201) return this.pushFailure(res, 'uploading blob');
    return 'uploaded';
  }

  /** PUT /v2/<name>/manifests/<tag>; returns the digest the registry gives it. */
  async putManifest(tag: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request('PUT', `${this.repoPath}/manifests/${tag}`, { headers: { 'Content-Type': mediaType }, body: () => bytes });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status !== 201) return this.pushFailure(res, 'putting manifest');
    return res.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  }

  /** Streams a blob to `dest`, reporting progress, and checks its digest. */
  async download(digest: string, dest: string, size: number, onProgress: ByteProgress): Promise<void> {
    const res = await this.get(`${this.repoPath}/blobs/${digest}`);
    if (!res.ok || !res.body) await this.failure(res);
    const total = size || Number(res.headers.get('content-length') ?? 0);
    const hash = createHash('sha256');
    let seen = 0;
    let stall: NodeJS.Timeout | undefined;
    const src = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    const arm = (): void => {
      clearTimeout(stall);
      stall = setTimeout(() => src.destroy(new SystemError(`download of ${digest} stalled`)), STALL_TIMEOUT_MS);
    };
    arm();
    const watch = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        arm();
        hash.update(chunk);
        seen += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(src, watch, byteMeter(total, onProgress), createWriteStream(dest));
    } finally {
      clearTimeout(stall);
    }
    // The meter reports reaching a known `total` itself; an empty blob, or one of another size, here.
    if (seen !== total || total === 0) onProgress(seen, total);
    if (`sha256:${hash.digest('hex')}` !== digest) throw new SystemError(`filesystem layer verification failed for digest ${digest}`);
  }
}

function basicHeader(a: RegistryAuth): string {
  return `Basic ${Buffer.from(`${a.username ?? ''}:${a.password ?? ''}`).toString('base64')}`;
}

/** `Bearer realm="https://auth",service="registry",scope="repository:x:pull"` → its parameters. */
export function parseChallenge(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  const rest = header.replace(/^\S+\s*/, '');
  for (const m of rest.matchAll(/([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    out[m[1]!.toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return out;
}

/** Plain HTTP for loopback registries and those configured with `--insecure-registry`. */
export function isInsecure(domain: string, insecure: string[]): boolean {
  const host = domain.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))) return true;
  for (const entry of insecure) {
    if (entry === domain || entry === host) return true;
    // CIDR entries (`10.0.0.0/8`) as Docker allows; IPv4 only.
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (m && isIP(host) === 4) {
      const toInt = (s: string): number => s.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
      const bits = Number(m[2]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      if ((toInt(host) & mask) === (toInt(m[1]!) & mask)) return true;
    }
  }
  return false;
}

function networkError(method: string, url: string, e: unknown, timedOut: boolean): SystemError {
  const verb = method[0] + method.slice(1).toLowerCase();
  if (timedOut) return new SystemError(`${verb} "${url}": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)`);
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const u = new URL(url);
  const hostPort = `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  if (cause?.code === 'ECONNREFUSED') return new SystemError(`${verb} "${url}": dial tcp ${hostPort}: connect: connection refused`, { cause: e });
  if (cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN') {
    return new SystemError(`${verb} "${url}": dial tcp: lookup ${u.hostname}: no such host`, { cause: e });
  }
  return new SystemError(`${verb} "${url}": ${cause?.message ?? (e as Error).message}`, { cause: e });
}
