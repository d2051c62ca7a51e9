import { pipeline } from 'node:stream/promises';
import type { Router, Ctx } from './router.js';
import { compareVersions, parseFilters, qbool } from './router.js';
import type { Daemon } from '../daemon.js';
import { Forbidden, InvalidParameter, errorMessage } from '../errors.js';
import type { ImageRecord, ImageRunConfig } from '../images/image-store.js';
import { importImage } from '../images/image-importer.js';
import { loadArchive } from '../images/image-loader.js';
import { pullImage } from '../images/image-puller.js';
import { pushImage } from '../images/image-pusher.js';
import { resolveSaveNames, saveArchive } from '../images/image-saver.js';
import { parsePlatform } from '../images/platform.js';
import { ProgressStream } from '../images/progress-stream.js';
import {
  familiarMatch,
  familiarName,
  isValidTag,
  parseDigest,
  parseNormalizedNamed,
  tagReference,
} from '../images/reference.js';
import { decodeRegistryAuth } from '../images/registry-client.js';
import { goDurationMs } from '../go-duration.js';

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Config fields Docker always prints in inspect, by API version (moby `legacyConfigFields`). */
const LEGACY_CONFIG_CURRENT: Record<string, unknown> = {
  Cmd: null,
  Entrypoint: null,
  Env: null,
  Labels: null,
  OnBuild: null,
  User: '',
  Volumes: null,
  WorkingDir: '',
};
const LEGACY_CONFIG_1_49: Record<string, unknown> = {
  ...LEGACY_CONFIG_CURRENT,
  AttachStderr: false,
  AttachStdin: false,
  AttachStdout: false,
  Domainname: '',
  Hostname: '',
  Image: '',
  OpenStdin: false,
  StdinOnce: false,
  Tty: false,
};

function before(v: string, w: string): boolean {
  return compareVersions(v, w) < 0;
}

/** Drops what Go's `omitempty` would drop, then lays Docker's always-present fields under it. */
function inspectConfig(cfg: ImageRunConfig | undefined, version: string): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg ?? {})) {
    if (v === null || v === undefined || v === '' || v === false) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    set[k] = v;
  }
  const merged: Record<string, unknown> = { ...(before(version, '1.50') ? LEGACY_CONFIG_1_49 : LEGACY_CONFIG_CURRENT), ...set };
  // Go marshals the merged map with sorted keys.
  return Object.fromEntries(Object.keys(merged).sort().map((k) => [k, merged[k]]));
}

/** Go's RFC3339Nano rendering of a config time: fraction without trailing zeros, `Z` for UTC. */
function rfc3339Nano(s: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/i.exec(s);
  if (!m) return s;
  const frac = (m[2] ?? '').replace(/0+$/, '');
  const zone = m[3] === '+00:00' || m[3]!.toUpperCase() === 'Z' ? 'Z' : m[3];
  return `${m[1]}${frac ? `.${frac}` : ''}${zone}`;
}

function unixSeconds(rfc: string): number {
  const t = Date.parse(rfc);
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

function inspectView(d: Daemon, img: ImageRecord, version: string): Record<string, unknown> {
  const c = img.config;
  const history = c.history ?? [];
  const comment = c.comment || (history.length ? history[history.length - 1]!.comment ?? '' : '');
  const view: Record<string, unknown> = {
    Id: img.id,
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Parent: img.parent,
    Comment: comment,
  };
  if (img.created) view.Created = rfc3339Nano(img.created);
  else if (before(version, '1.44')) view.Created = ZERO_TIME;
  if (before(version, '1.45')) {
    if (typeof c.container === 'string' && c.container) view.Container = c.container;
    view.ContainerConfig = inspectConfig((c.container_config as ImageRunConfig) ?? {}, '1.49');
  }
  Object.assign(view, {
    DockerVersion: c.docker_version ?? '',
    Author: c.author ?? '',
    Config: inspectConfig(c.config, version),
    Architecture: c.architecture ?? '',
  });
  if (c.variant) view.Variant = c.variant;
  view.Os = c.os ?? 'linux';
  if (c['os.version']) view.OsVersion = c['os.version'];
  view.Size = img.size;
  if (before(version, '1.44')) view.VirtualSize = img.size;
  view.GraphDriver = { Data: d.images.graphDriverData(img), Name: 'overlay2' };
  view.RootFS = img.diffIds.length ? { Type: c.rootfs?.type ?? 'layers', Layers: img.diffIds } : { Type: c.rootfs?.type ?? 'layers' };
  view.Metadata = { LastTagTime: img.lastTagTime ? rfc3339Nano(img.lastTagTime) : ZERO_TIME };
  return view;
}

function invalidFilter(name: string, values?: string[]): InvalidParameter {
  return new InvalidParameter(`invalid filter '${name}${values ? `=[${values.join(' ')}]` : ''}'`);
}

function checkFilters(filters: Map<string, string[]>, accepted: string[]): void {
  for (const k of filters.keys()) if (!accepted.includes(k)) throw invalidFilter(k);
}

/** Docker's `filters.MatchKVList`: every `key` or `key=value` must be among the labels. */
function matchLabels(wanted: string[], labels: Record<string, string> | null | undefined): boolean {
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return labels != null && w in labels;
    return labels != null && labels[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

/** `until`/`since` values: a Go duration (`24h`), unix seconds, or an RFC 3339 date. */
function parseTimestamp(v: string): number {
  const ago = goDurationMs(v);
  if (ago !== undefined) return Date.now() - ago;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidParameter(`failed to parse value as time or duration: "${v}"`);
  return t;
}

function boolFilter(filters: Map<string, string[]>, name: string, dflt: boolean): boolean {
  const v = filters.get(name);
  if (!v || v.length === 0) return dflt;
  const norm = v.map((x) => x.toLowerCase());
  if (norm.every((x) => x === 'true' || x === '1')) return true;
  if (norm.every((x) => x === 'false' || x === '0')) return false;
  throw invalidFilter(name, v);
}

/** Streams a long operation; an error before the first line becomes the HTTP status. */
async function streamed(c: Ctx, fn: (out: ProgressStream) => Promise<void>): Promise<void> {
  const out = new ProgressStream(c.res);
  try {
    await fn(out);
  } catch (e) {
    if (!out.flushed) throw e;
    out.error(errorMessage(e));
  }
  out.end();
}

/** Image endpoints: load, import, pull, list, inspect, tag, rmi, prune, history. */
export function registerImages(r: Router, d: Daemon): void {
  r.get('/images/json', (c) => {
    const filters = parseFilters(c.query);
    checkFilters(filters, ['dangling', 'label', 'before', 'since', 'reference', 'until']);
    const all = qbool(c.query, 'all');
    if (before(c.version, '1.41') && c.query.get('filter')) filters.set('reference', [c.query.get('filter')!]);
    const danglingOnly = filters.has('dangling') ? boolFilter(filters, 'dangling', false) : undefined;
    const beforeImg = filters.get('before')?.map((v) => d.images.get(v)).pop();
    const sinceImg = filters.get('since')?.map((v) => d.images.get(v)).pop();
    const until = filters.get('until')?.map(parseTimestamp).pop();
    const refPatterns = filters.get('reference');
    const sharedSize = !before(c.version, '1.42') && qbool(c.query, 'shared-size');
    const images = d.images.list();
    const layerUse = new Map<string, number>();
    if (sharedSize) for (const img of images) for (const l of img.layers) layerUse.set(l, (layerUse.get(l) ?? 0) + 1);
    const out: Record<string, unknown>[] = [];
    for (const img of images) {
      if (danglingOnly === true && img.repoTags.length > 0) continue;
      const created = unixSeconds(img.created);
      if (beforeImg && Date.parse(img.created) >= Date.parse(beforeImg.created)) continue;
      if (sinceImg && Date.parse(img.created) <= Date.parse(sinceImg.created)) continue;
      if (until !== undefined && Date.parse(img.created) > until) continue;
      if (filters.has('label') && !matchLabels(filters.get('label')!, img.config.config?.Labels)) continue;
      let tags = img.repoTags;
      let digests = img.repoDigests;
      if (refPatterns) {
        const keep = (s: string): boolean => {
          const ref = parseNormalizedNamed(s);
          return refPatterns.some((p) => familiarMatch(p, ref));
        };
        tags = tags.filter(keep);
        digests = digests.filter(keep);
      }
      if (tags.length === 0 && digests.length === 0) {
        if (!all && d.images.children(img.id).length > 0) continue;
        if (danglingOnly === false) continue;
        if (refPatterns) continue;
      }
      const summary: Record<string, unknown> = {
        Containers: before(c.version, '1.51') ? -1 : d.images.usersOf(img.id).length,
        Created: created,
        Id: img.id,
        Labels: img.config.config?.Labels ?? null,
        ParentId: img.parent,
        RepoDigests: digests,
        RepoTags: tags,
        SharedSize: sharedSize ? img.layers.filter((l) => (layerUse.get(l) ?? 0) > 1).reduce((n, l) => n + (d.images.layers.get(l)?.size ?? 0), 0) : -1,
        Size: img.size,
      };
      if (before(c.version, '1.43') && tags.length === 0 && digests.length === 0) {
        summary.RepoTags = ['<none>:<none>'];
        summary.RepoDigests = ['<none>@<none>'];
      }
      if (before(c.version, '1.44')) summary.VirtualSize = img.size;
      out.push(summary);
    }
    out.sort((a, b) => (b.Created as number) - (a.Created as number));
    c.send(200, out);
  });

  r.post('/images/create', async (c) => {
    const q = c.query;
    const platformParam = !before(c.version, '1.32') ? q.get('platform') : null;
    const platform = platformParam ? parsePlatform(platformParam) : undefined;
    const fromImage = q.get('fromImage');
    if (fromImage) {
      let ref = parseNormalizedNamed(fromImage.replace(/:$/, ''));
      const tag = q.get('tag');
      if (tag) {
        if (/^[a-z0-9]+:/.test(tag)) ref = { domain: ref.domain, path: ref.path, digest: parseDigest(tag) };
        else if (!isValidTag(tag)) throw new InvalidParameter('invalid tag format');
        else ref = { ...ref, tag };
      }
      if (!ref.tag && !ref.digest) ref.tag = 'latest';
      if (familiarName(ref) === 'scratch') throw new Forbidden("'scratch' is a reserved name");
      const auth = decodeRegistryAuth(c.req.headers['x-registry-auth'] as string | undefined);
      await streamed(c, (out) => pullImage(d.images, ref, out, { auth, platform, insecureRegistries: d.images.insecureRegistries }));
      return;
    }
    const src = q.get('fromSrc') ?? '';
    if (src !== '-') throw new InvalidParameter(src === '' ? 'either fromImage or fromSrc must be given' : 'importing from a URL is not supported; send the archive in the request body (fromSrc=-)');
    const repo = q.get('repo');
    const ref = repo ? tagReference(repo, q.get('tag')) : undefined;
    const message = q.get('message') || `Imported from ${src}`;
    const changes = q.getAll('changes');
    await streamed(c, async (out) => {
      const id = await importImage(d.images, c.req, { ref, message, changes, platform });
      out.write({ status: id });
    });
  });

  r.post('/images/load', async (c) => {
    const quiet = qbool(c.query, 'quiet', true);
    const platformParam = !before(c.version, '1.48') ? c.query.get('platform') : null;
    const platform = platformParam ? parsePlatform(platformParam) : undefined;
    await streamed(c, async (out) => {
      await loadArchive(d.images, c.req, out, { quiet, platform });
    });
  });

  const save = async (c: Ctx, names: string[]): Promise<void> => {
    const archive = await saveArchive(d.images, resolveSaveNames(d.images, names));
    c.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    // A failure half-way can only cut the connection, as dockerd does: the client sees a short tar.
    await pipeline(archive, c.res).catch(() => c.res.destroy());
  };
  r.get('/images/get', (c) => save(c, c.query.getAll('names')));
  r.get('/images/{*}/get', (c) => save(c, [c.params[0]!]));

  r.post('/images/prune', async (c) => {
    const filters = parseFilters(c.query);
    checkFilters(filters, ['dangling', 'label', 'label!', 'until']);
    const danglingOnly = boolFilter(filters, 'dangling', true);
    if ((filters.get('until')?.length ?? 0) > 1) throw new InvalidParameter('more than one until filter specified');
    const until = filters.get('until')?.map(parseTimestamp).pop();
    const labels = filters.get('label');
    const notLabels = filters.get('label!');
    const { deleted, reclaimed } = await d.images.prune(danglingOnly, (img) => {
      if (until !== undefined && (!img.created || Date.parse(img.created) > until)) return false;
      const l = img.config.config?.Labels;
      if (labels && !matchLabels(labels, l)) return false;
      if (notLabels && notLabels.length && matchLabels(notLabels, l)) return false;
      return true;
    });
    c.send(200, { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  r.get('/images/{*}/json', (c) => c.send(200, inspectView(d, d.images.get(c.params[0]!), c.version)));

  r.get('/images/{*}/history', (c) => {
    const img = d.images.get(c.params[0]!);
    const items: Record<string, unknown>[] = [];
    let layer = 0;
    for (const h of img.config.history ?? []) {
      let size = 0;
      if (!h.empty_layer) {
        const chain = img.layers[layer++];
        if (!chain) throw new InvalidParameter('too many non-empty layers in History section');
        size = d.images.layers.get(chain)?.size ?? 0;
      }
      items.unshift({ Id: '<missing>', Created: h.created ? unixSeconds(h.created) : 0, CreatedBy: h.created_by ?? '', Tags: null, Size: size, Comment: h.comment ?? '' });
    }
    if (items.length) {
      items[0]!.Id = img.id;
      items[0]!.Tags = img.repoTags.length ? img.repoTags : null;
    }
    c.send(200, items);
  });

  r.post('/images/{*}/tag', (c) => {
    const img = d.images.get(c.params[0]!);
    const repo = c.query.get('repo');
    if (!repo) throw new InvalidParameter('repository name must have at least one component');
    const ref = tagReference(repo, c.query.get('tag'));
    if (familiarName(ref) === 'sha256') throw new InvalidParameter('refusing to create an ambiguous tag using digest algorithm as name');
    d.images.tag(img, ref);
    c.empty(201);
  });

  r.post('/images/{*}/push', async (c) => {
    const ref = parseNormalizedNamed(c.params[0]!);
    if (ref.digest) throw new InvalidParameter('cannot push a digest reference');
    const tag = c.query.get('tag');
    if (tag) {
      if (!isValidTag(tag)) throw new InvalidParameter('invalid tag format');
      ref.tag = tag;
    }
    const auth = decodeRegistryAuth(c.req.headers['x-registry-auth'] as string | undefined);
    await streamed(c, (out) => pushImage(d.images, ref, out, { auth, insecureRegistries: d.images.insecureRegistries }));
  });

  r.delete('/images/{*}', async (c) => {
    const name = c.params[0]!;
    if (name.trim() === '') throw new InvalidParameter('image name cannot be blank');
    const list = await d.images.remove(name, { force: qbool(c.query, 'force'), prune: !qbool(c.query, 'noprune') });
    c.send(200, list);
  });

}
