import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SystemError } from '../errors.js';
import { logger } from '../log.js';
import type { ImageConfigDoc, ImageStore } from './image-store.js';
import { chainIdOf, type LayerRecord } from './layer-store.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from './platform.js';
import type { ProgressStream } from './progress-stream.js';
import { familiarString, shortIdOfDigest, type ImageReference } from './reference.js';
import { MEDIA, RegistryClient, type FetchedManifest, type RegistryAuth } from './registry-client.js';

const log = logger('arca:images:pull');

/** How many layers download at once (Docker's default `max-concurrent-downloads`). */
const CONCURRENT_DOWNLOADS = 3;

export interface PullOptions {
  auth?: RegistryAuth;
  platform?: Platform;
  insecureRegistries: string[];
}

/**
 * Runs `fn` over items with at most `limit` running at once; items waiting for a slot get
 * `onWait` first (Docker's `Waiting` status).
 */
async function withLimit<T>(items: T[], limit: number, onWait: (t: T) => void, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  items.slice(limit).forEach(onWait);
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Picks the manifest for `platform` out of an index / manifest list. */
function pickFromIndex(index: FetchedManifest, platform: Platform): string {
  const entries = (index.json.manifests ?? []).filter((m) => m.platform && platformMatches(platform, m.platform));
  const exact = entries.find((m) => !platform.variant || m.platform?.variant === platform.variant) ?? entries[0];
  if (!exact) throw new SystemError(`no matching manifest for ${formatPlatform(platform)} in the manifest list entries`);
  return exact.digest;
}

/**
 * `docker pull`: resolves the reference on its registry, downloads what is missing and records
 * the image with its tag and `name@digest`. Errors before the first progress line surface as an
 * HTTP status; later ones go into the stream.
 */
export async function pullImage(images: ImageStore, ref: ImageReference, out: ProgressStream, opts: PullOptions): Promise<void> {
  const platform = opts.platform ?? hostPlatform();
  const client = new RegistryClient(ref, opts.auth, opts.insecureRegistries);
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
  let manifest = await client.manifest(tagOrDigest);
  const repoDigest = manifest.digest;
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList || manifest.json.manifests) {
    manifest = await client.manifest(pickFromIndex(manifest, platform));
  }
  if (!manifest.json.config || !Array.isArray(manifest.json.layers)) throw new SystemError('invalid manifest: no config or layers');

  // Docker names the repository by its path on the registry here (`library/busybox`).
  out.write({ status: `Pulling from ${ref.path}`, id: tagOrDigest });

  const configBytes = await client.blobBytes(manifest.json.config.digest);
  const configJson = configBytes.toString('utf8');
  const config = JSON.parse(configJson) as ImageConfigDoc;
  const diffIds = config.rootfs?.diff_ids ?? [];
  const layers = manifest.json.layers.filter((l) => !l.mediaType?.includes('foreign') || !l.urls);
  if (diffIds.length !== layers.length) throw new SystemError("layers from manifest don't match image configuration");
  if (config.os && config.os !== platform.os) {
    throw new SystemError(`cannot download image with operating system "${config.os}" when requesting "${platform.os}"`);
  }

  const scratch = await images.layers.tempDir();
  const pinned: string[] = [];
  const records: (LayerRecord | undefined)[] = [];
  let downloaded = false;
  let ok = false;
  try {
    const chains: string[] = [];
    let parent: string | null = null;
    for (const d of diffIds) {
      parent = chainIdOf(parent, d);
      chains.push(parent);
    }
    const missing: number[] = [];
    layers.forEach((l, i) => {
      const id = shortIdOfDigest(l.digest);
      const have = images.layers.get(chains[i]!);
      if (have) {
        images.layers.pin(have.chainId);
        pinned.push(have.chainId);
        records[i] = have;
        out.status('Already exists', id);
      } else {
        missing.push(i);
        out.status('Pulling fs layer', id);
      }
    });

    const files = new Map<number, string>();
    // Downloads run in parallel; extraction is in layer order, each as soon as its blob is in.
    const done = new Map<number, Promise<void>>();
    const resolvers = new Map<number, { ok: () => void; fail: (e: unknown) => void }>();
    for (const i of missing) {
      done.set(i, new Promise<void>((ok, fail) => resolvers.set(i, { ok, fail })));
      done.get(i)!.catch(() => undefined);
    }
    const downloads = withLimit(
      missing,
      CONCURRENT_DOWNLOADS,
      (i) => out.status('Waiting', shortIdOfDigest(layers[i]!.digest)),
      async (i) => {
        const l = layers[i]!;
        const id = shortIdOfDigest(l.digest);
        const file = join(scratch, `blob-${i}`);
        try {
          await client.download(l.digest, file, l.size ?? 0, (cur, total) => out.progress('Downloading', id, cur, total));
          out.status('Verifying Checksum', id);
          out.status('Download complete', id);
          files.set(i, file);
          resolvers.get(i)!.ok();
        } catch (e) {
          resolvers.get(i)!.fail(e);
          throw e;
        }
      },
    );
    downloads.catch(() => undefined);

    parent = null;
    for (let i = 0; i < layers.length; i++) {
      if (records[i]) {
        parent = records[i]!.chainId;
        continue;
      }
      await done.get(i);
      const id = shortIdOfDigest(layers[i]!.digest);
      const { diffId, tarPath } = await images.layers.inflate(files.get(i)!, scratch, (cur, total) => out.progress('Extracting', id, cur, total));
      await rm(files.get(i)!, { force: true });
      if (diffId !== diffIds[i]) throw new SystemError(`layer ${layers[i]!.digest}: diff id ${diffId} does not match the image config (${diffIds[i]})`);
      const rec = await images.layers.register(tarPath, diffId, parent);
      await rm(tarPath, { force: true });
      pinned.push(rec.chainId);
      records[i] = rec;
      parent = rec.chainId;
      downloaded = true;
      out.status('Pull complete', id);
    }
    await downloads;

    const refs: ImageReference[] = [];
    const digestRef: ImageReference = { domain: ref.domain, path: ref.path, digest: repoDigest };
    const tagRef: ImageReference | undefined = ref.digest ? undefined : { domain: ref.domain, path: ref.path, tag: ref.tag ?? 'latest' };
    if (tagRef) refs.push(tagRef);
    refs.push(digestRef);
    const before = images.lookup(tagRef ?? digestRef);
    const { id } = images.commit({ configJson, layers: records as LayerRecord[] }, refs);
    out.write({ status: `Digest: ${repoDigest}` });
    const shown = familiarString(tagRef ?? digestRef);
    const upToDate = before === id && !downloaded;
    out.write({ status: upToDate ? `Status: Image is up to date for ${shown}` : `Status: Downloaded newer image for ${shown}` });
    images.event('pull', shown);
    log.info('pulled', { ref: shown, id });
    ok = true;
  } finally {
    for (const c of pinned) images.layers.unpin(c);
    if (!ok) await images.layers.removeUnused().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}
