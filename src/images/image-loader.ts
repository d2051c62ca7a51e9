import { existsSync } from 'node:fs';
import { mkdir, readFile, realpath, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidParameter } from '../errors.js';
import { run } from '../sys/runner.js';
import { spoolBody } from './body-spool.js';
import type { ImageConfigDoc, ImageStore } from './image-store.js';
import { chainIdOf, type LayerRecord } from './layer-store.js';
import { hostPlatform, platformMatches, type Platform } from './platform.js';
import type { ProgressStream } from './progress-stream.js';
import { familiarString, parseNormalizedNamed, shortIdOfDigest, type ImageReference } from './reference.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** One image found in an archive, validated, before anything is stored. */
interface PendingImage {
  configJson: string;
  config: ImageConfigDoc;
  /** Archive paths of the layer blobs, bottom first. */
  layerPaths: string[];
  refs: ImageReference[];
}

function fail(msg: string, cause?: unknown): never {
  throw new InvalidParameter(msg, { cause });
}

/** Resolves an archive-relative path, refusing anything that escapes the archive. */
async function safePath(root: string, rel: unknown): Promise<string> {
  if (typeof rel !== 'string' || rel === '') fail(`invalid archive: bad path ${JSON.stringify(rel)}`);
  const p = join(root, rel);
  let real: string;
  try {
    real = await realpath(p);
  } catch {
    fail(`invalid archive: ${rel} is missing`);
  }
  if (real !== root && !real.startsWith(root + sep)) fail(`invalid archive: ${rel} is outside the archive`);
  return real;
}

async function readJson<T>(path: string, what: string): Promise<{ raw: string; value: T }> {
  const raw = await readFile(path, 'utf8');
  try {
    return { raw, value: JSON.parse(raw) as T };
  } catch (e) {
    fail(`invalid archive: ${what} is not valid JSON: ${(e as Error).message}`, e);
  }
}

function checkConfig(config: ImageConfigDoc, layerCount: number): void {
  if (typeof config !== 'object' || config === null || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
    fail('invalid image JSON, no RootFS key');
  }
  const os = config.os ?? 'linux';
  if (os !== 'linux') fail(`cannot load ${os} image on linux`);
  const got = config.rootfs.diff_ids.length;
  if (layerCount !== got) fail(`invalid manifest, layers length mismatch: expected ${layerCount}, got ${got}`);
}

function tagRef(s: string): ImageReference {
  const ref = parseNormalizedNamed(s);
  if (!ref.tag || ref.digest) fail(`invalid tag "${s}"`);
  return ref;
}

/** docker-archive: `manifest.json` lists Config, RepoTags and Layers per image. */
async function readDockerArchive(root: string): Promise<PendingImage[]> {
  const { value: manifest } = await readJson<unknown>(join(root, 'manifest.json'), 'manifest.json');
  if (!Array.isArray(manifest)) fail('invalid manifest, manifest cannot be null (but can be [])');
  const out: PendingImage[] = [];
  for (const m of manifest as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]) {
    const { raw, value: config } = await readJson<ImageConfigDoc>(await safePath(root, m.Config), String(m.Config));
    const layers = Array.isArray(m.Layers) ? (m.Layers as unknown[]) : [];
    checkConfig(config, layers.length);
    const layerPaths: string[] = [];
    for (const l of layers) layerPaths.push(await safePath(root, l));
    const tags = Array.isArray(m.RepoTags) ? (m.RepoTags as unknown[]).map(String) : [];
    out.push({ configJson: raw, config, layerPaths, refs: tags.map(tagRef) });
  }
  return out;
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function blobPath(root: string, digest: unknown): Promise<string> {
  if (typeof digest !== 'string' || !/^[a-z0-9]+:[a-f0-9]+$/.test(digest)) fail(`invalid archive: bad digest ${JSON.stringify(digest)}`);
  const [alg, hex] = digest.split(':');
  return safePath(root, `blobs/${alg}/${hex}`);
}

/** The name an OCI index entry carries: containerd's full name, else a full `ref.name`. */
function ociName(annotations: Record<string, string> | undefined): ImageReference[] {
  const full = annotations?.['io.containerd.image.name'];
  if (full) return [tagRef(full)];
  const name = annotations?.['org.opencontainers.image.ref.name'];
  // A bare `ref.name` like `latest` is only a tag with no repository: nothing to name the image by.
  if (name && /[:/]/.test(name)) {
    try {
      return [tagRef(name)];
    } catch {
      return [];
    }
  }
  return [];
}

/** OCI image layout: `index.json` → (index →) manifest → config + layer blobs. */
async function readOciLayout(root: string, platform: Platform): Promise<PendingImage[]> {
  const { value: index } = await readJson<{ manifests?: Descriptor[] }>(join(root, 'index.json'), 'index.json');
  if (!index || !Array.isArray(index.manifests)) fail('invalid archive: index.json has no manifests');
  const out: PendingImage[] = [];
  const visit = async (desc: Descriptor, refs: ImageReference[], depth: number): Promise<void> => {
    if (depth > 4) fail('invalid archive: indexes nested too deep');
    const { value: doc } = await readJson<{ mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(
      await blobPath(root, desc.digest),
      String(desc.digest),
    );
    const type = desc.mediaType ?? doc.mediaType ?? (doc.manifests ? INDEX_TYPES.values().next().value : '');
    if (INDEX_TYPES.has(type ?? '') || Array.isArray(doc.manifests)) {
      const entries = (doc.manifests ?? []).filter((d) => !d.platform || platformMatches(platform, d.platform));
      // Attestation manifests (buildkit) are listed with platform unknown/unknown and are skipped above.
      if (entries.length === 0) fail(`no matching manifest for ${platform.os}/${platform.architecture} in the manifest list entries`);
      await visit(entries[0]!, refs, depth + 1);
      return;
    }
    if (!doc.config) fail(`invalid archive: manifest ${desc.digest} has no config`);
    const { raw, value: config } = await readJson<ImageConfigDoc>(await blobPath(root, doc.config.digest), String(doc.config.digest));
    const layers = doc.layers ?? [];
    checkConfig(config, layers.length);
    const layerPaths: string[] = [];
    for (const l of layers) layerPaths.push(await blobPath(root, l.digest));
    out.push({ configJson: raw, config, layerPaths, refs });
  };
  for (const d of index.manifests) await visit(d, ociName(d.annotations), 0);
  return out;
}

/**
 * `docker load`: a docker-archive (`manifest.json`) or OCI image layout (`index.json`) tar,
 * possibly compressed. Everything is validated and every layer unpacked before the first image is
 * recorded, so a bad archive leaves nothing behind.
 */
export async function loadArchive(
  images: ImageStore,
  body: Readable,
  out: Pick<ProgressStream, 'progress' | 'stream'>,
  /** `silent`: no `load` event (an image that a build brings in is not a `docker load`). */
  opts: { quiet: boolean; platform?: Platform; silent?: boolean },
): Promise<string[]> {
  const scratch = await images.layers.tempDir();
  const pinned: string[] = [];
  let committed = false;
  try {
    const archive = await spoolBody(body, scratch, 'archive');
    const root = join(scratch, 'x');
    await mkdir(root);
    await run(['tar', '-x', '-f', archive, '-C', root, '--no-same-owner', '--no-same-permissions']).catch((e: unknown) => {
      const msg = (e as { stderr?: string }).stderr?.trim().split('\n')[0] ?? String(e);
      fail(`invalid tar archive: ${msg.replace(/^tar: /, '')}`, e);
    });
    await rm(archive, { force: true });
    const realRoot = await realpath(root);
    let pending: PendingImage[];
    if (existsSync(join(realRoot, 'manifest.json'))) pending = await readDockerArchive(realRoot);
    else if (existsSync(join(realRoot, 'index.json'))) pending = await readOciLayout(realRoot, opts.platform ?? hostPlatform());
    else fail('invalid archive: no manifest.json (docker-archive) or index.json (OCI layout) found');

    const layered: LayerRecord[][] = [];
    for (const img of pending) {
      const diffIds = img.config.rootfs!.diff_ids!;
      const recs: LayerRecord[] = [];
      let parent: string | null = null;
      for (let i = 0; i < diffIds.length; i++) {
        const want = diffIds[i]!;
        const chain = chainIdOf(parent, want);
        let rec = images.layers.get(chain);
        if (rec) {
          images.layers.pin(chain);
        } else {
          const id12 = shortIdOfDigest(want);
          const { diffId, tarPath } = await images.layers.inflate(
            img.layerPaths[i]!,
            scratch,
            opts.quiet ? undefined : (cur, total) => out.progress('Loading layer', id12, cur, total),
          );
          if (diffId !== want) fail(`invalid diffID for layer ${i}: expected "${want}", got "${diffId}"`);
          rec = await images.layers.register(tarPath, diffId, parent);
          await rm(tarPath, { force: true });
        }
        pinned.push(chain);
        recs.push(rec);
        parent = chain;
      }
      layered.push(recs);
    }

    const lines: string[] = [];
    let idLines = '';
    let lastRefCount = 0;
    const ids: string[] = [];
    images.transaction(() => {
      pending.forEach((img, n) => {
        const { id, moved } = images.commit({ configJson: img.configJson, layers: layered[n]! }, img.refs);
        idLines += `Loaded image ID: ${id}\n`;
        if (!opts.silent) images.event('load', id);
        ids.push(id);
        for (const r of img.refs) {
          const prev = moved.get(`${r.domain}/${r.path}:${r.tag}`);
          if (prev) lines.push(`The image ${familiarString(r)} already exists, renaming the old one with ID ${prev} to empty string\n`);
          lines.push(`Loaded image: ${familiarString(r)}\n`);
        }
        lastRefCount = img.refs.length;
      });
    });
    committed = true;
    for (const l of lines) out.stream(l);
    if (lastRefCount === 0) out.stream(idLines);
    return ids;
  } finally {
    for (const c of pinned) images.layers.unpin(c);
    if (!committed) await images.layers.removeUnused();
    await rm(scratch, { recursive: true, force: true });
  }
}
