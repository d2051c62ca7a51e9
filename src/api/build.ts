import type { Router } from './router.js';
import { qbool } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter, NotImplemented, errorMessage } from '../errors.js';
import { BuildFailed, type BuildRequest } from '../build/image-builder.js';
import { ProgressStream } from '../images/progress-stream.js';
import { parseNormalizedNamed, withDefaultTag, type ImageReference } from '../images/reference.js';
import { parsePlatform } from '../images/platform.js';
import { decodeRegistryHeader, registryAuth, type RegistryAuth } from '../images/registry-client.js';

function jsonMap(q: URLSearchParams, name: string): Record<string, string | null> {
  const raw = q.get(name);
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidParameter(`invalid ${name}: ${raw}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidParameter(`invalid ${name}: ${raw}`);
  return v as Record<string, string | null>;
}

/**
 * `X-Registry-Config`: base64url JSON of credentials by registry (`https://index.docker.io/v1/`,
 * `localhost:5000`, ...), as the CLI sends every login it knows for a build.
 */
function registryConfig(header: string | undefined): ((domain: string) => RegistryAuth | undefined) | undefined {
  const map = decodeRegistryHeader(header);
  if (typeof map !== 'object' || map === null) return undefined;
  const byDomain = new Map<string, RegistryAuth>();
  for (const [key, entry] of Object.entries(map)) {
    const host = key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
    const domain = host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
    const auth = registryAuth(entry);
    if (auth) byDomain.set(domain, auth);
  }
  return (domain) => byDomain.get(domain);
}

function tagRefs(values: string[]): ImageReference[] {
  return values
    .filter((t) => t !== '')
    .map((t) => {
      const ref = parseNormalizedNamed(t);
      if (ref.digest) throw new InvalidParameter(`invalid tag "${t}": a tag cannot contain a digest`);
      return withDefaultTag(ref);
    });
}

/** Build endpoints: `POST /build` (Docker's classic builder API, run by buildah) and `POST /build/prune`. */
export function registerBuild(r: Router, d: Daemon): void {
  r.post('/build', async (c) => {
    const q = c.query;
    if (q.get('remote')) throw new NotImplemented('remote build contexts (URLs, git) are not supported: send the context as a tar');
    if (q.get('version') === '2') throw new InvalidParameter('BuildKit is not supported by this daemon: use the classic builder (version=1)');
    const buildArgs: Record<string, string> = {};
    // A null value means "from the client's environment", which the CLI already resolved.
    for (const [k, v] of Object.entries(jsonMap(q, 'buildargs'))) if (typeof v === 'string') buildArgs[k] = v;
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(jsonMap(q, 'labels'))) labels[k] = v ?? '';
    const platform = q.get('platform') || undefined;
    if (platform) parsePlatform(platform);
    const shm = Number(q.get('shmsize') ?? 0);
    if (!Number.isFinite(shm) || shm < 0) throw new InvalidParameter(`invalid shmsize: ${q.get('shmsize')}`);
    const req: BuildRequest = {
      dockerfile: q.get('dockerfile') ?? '',
      tags: tagRefs(q.getAll('t')),
      buildArgs,
      labels,
      target: q.get('target') || undefined,
      noCache: qbool(q, 'nocache'),
      pull: qbool(q, 'pull'),
      quiet: qbool(q, 'q'),
      networkMode: q.get('networkmode') ?? '',
      platform,
      extraHosts: q.getAll('extrahosts').flatMap((h) => h.split(/[,\s]+/)).filter(Boolean),
      shmSize: shm || undefined,
      authFor: registryConfig(c.req.headers['x-registry-config'] as string | undefined),
    };
    const out = new ProgressStream(c.res);
    const abort = new AbortController();
    c.res.on('close', () => {
      if (!c.res.writableFinished) abort.abort();
    });
    try {
      await d.builder.build(c.req, req, out, abort.signal);
    } catch (e) {
      // Failures of the build itself go into the stream (status 200), as dockerd's; before, a status.
      if (!(e instanceof BuildFailed) && !out.flushed) throw e;
      const message = errorMessage(e);
      const code = /returned a non-zero code: (\d+)$/.exec(message)?.[1];
      out.write({ errorDetail: code ? { code: Number(code), message } : { message }, error: message });
    }
    out.end();
  });

  r.post('/build/prune', async (c) => {
    await d.builder.prune();
    c.send(200, { CachesDeleted: null, SpaceReclaimed: 0 });
  });
}
