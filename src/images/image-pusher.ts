import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { NotFound } from '../errors.js';
import { logger } from '../log.js';
import { openImageLayers } from './image-saver.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import type { LayerRecord, LayerTar } from './layer-store.js';
import type { ProgressStream } from './progress-stream.js';
import { familiarName, familiarString, fullName, shortIdOfDigest, type ImageReference } from './reference.js';
import { MEDIA, RegistryClient, type RegistryAuth } from './registry-client.js';

const log = logger('arca:images:push');

const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface PushOptions {
  auth?: RegistryAuth;
  insecureRegistries: string[];
}

interface Blob {
  digest: string;
  size: number;
}

/** Gzips a layer tar into `dest`, hashing what is written: the blob's digest and size. */
async function compress(layer: LayerTar, dest: string): Promise<Blob> {
  const hash = createHash('sha256');
  await pipeline(
    layer.open(),
    createGzip(),
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    }),
    createWriteStream(dest),
  );
  return { digest: `sha256:${hash.digest('hex')}`, size: (await stat(dest)).size };
}

/** The pushed manifest's digest joins the image's RepoDigests, as after a pull (Docker does so). */
function recordRepoDigest(images: ImageStore, image: ImageRecord, ref: ImageReference): void {
  const layers = image.layers.map((c) => images.layers.get(c));
  if (layers.some((l) => !l)) return;
  images.commit({ configJson: images.configJsonOf(image.id), layers: layers as LayerRecord[] }, [ref]);
}

/** The tags a push sends: the one named, or every tag of the repository when none is. */
function tagsToPush(images: ImageStore, ref: ImageReference): { ref: ImageReference; image: ImageRecord }[] {
  const name = fullName(ref);
  if (ref.tag) {
    const id = images.lookup(ref);
    const image = id ? images.byId(id) : undefined;
    if (!image) throw new NotFound(`tag does not exist: ${familiarString(ref)}`);
    return [{ ref, image }];
  }
  const out: { ref: ImageReference; image: ImageRecord }[] = [];
  for (const img of images.list()) {
    for (const r of images.refsOf(img.id)) if (r.tag && !r.digest && fullName(r) === name) out.push({ ref: r, image: img });
  }
  return out.sort((a, b) => (a.ref.tag! < b.ref.tag! ? -1 : 1));
}

/**
 * `docker push` to a distribution v2 registry, with Docker's progress lines: each layer's tar
 * (rebuilt byte for byte by the layer store, so its diff id holds) is gzipped once into scratch
 * to learn its digest, skipped when the registry has it (`Layer already exists`), else uploaded;
 * then the config and a schema 2 manifest under the tag, whose digest ends the stream (and the
 * aux `{Tag, Digest, Size}` the CLI reads).
 */
export async function pushImage(images: ImageStore, ref: ImageReference, out: ProgressStream, opts: PushOptions): Promise<void> {
  out.status(`The push refers to repository [${fullName(ref)}]`);
  const items = tagsToPush(images, ref);
  if (items.length === 0) throw new NotFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
  const client = new RegistryClient(ref, opts.auth, opts.insecureRegistries).forPush();
  const scratch = await images.layers.tempDir();
  /** Blobs pushed or found during this push, by diff id: a layer shared by two tags goes once. */
  const done = new Map<string, Blob>();
  try {
    for (const item of items) {
      const opened = await openImageLayers(images, item.image);
      try {
        const layers = opened.layers;
        const topFirst = [...layers].reverse();
        // Another repository of this registry the image came from or went to: its blobs can be mounted.
        const mountFrom = images
          .refsOf(item.image.id)
          .find((r) => r.domain === ref.domain && r.path !== ref.path)?.path;
        for (const l of topFirst) if (!done.has(l.diffId)) out.status('Preparing', shortIdOfDigest(l.diffId));
        for (const l of topFirst) {
          const id = shortIdOfDigest(l.diffId);
          if (done.has(l.diffId)) continue;
          const file = join(scratch, id);
          const blob = await compress(l, file);
          if (await client.blobExists(blob.digest)) out.status('Layer already exists', id);
          else {
            const how = await client.uploadBlob(blob.digest, blob.size, () => createReadStream(file), (cur, total) => out.progress('Pushing', id, cur, total), mountFrom);
            out.status(how === 'mounted' ? `Mounted from ${mountFrom}` : 'Pushed', id);
          }
          await rm(file, { force: true });
          done.set(l.diffId, blob);
        }
        const configBytes = Buffer.from(images.configJsonOf(item.image.id));
        if (!(await client.blobExists(item.image.id))) {
          await client.uploadBlob(item.image.id, configBytes.length, () => Readable.from([configBytes]));
        }
        const manifest = {
          schemaVersion: 2,
          mediaType: MEDIA.dockerManifest,
          config: { mediaType: DOCKER_CONFIG, size: configBytes.length, digest: item.image.id },
          layers: layers.map((l) => ({ mediaType: DOCKER_LAYER_GZIP, size: done.get(l.diffId)!.size, digest: done.get(l.diffId)!.digest })),
        };
        // Docker's schema 2 manifests are indented by three spaces; the digest covers these bytes.
        const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
        const tag = item.ref.tag!;
        const digest = await client.putManifest(tag, MEDIA.dockerManifest, bytes);
        out.write({ status: `${tag}: digest: ${digest} size: ${bytes.length}` });
        out.write({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: bytes.length } });
        recordRepoDigest(images, item.image, { domain: item.ref.domain, path: item.ref.path, digest });
        images.event('push', familiarString(item.ref));
        log.info('pushed', { ref: familiarString(item.ref), digest });
      } finally {
        opened.release();
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
