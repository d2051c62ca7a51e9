import { Readable } from 'node:stream';
import type { ImageRecord, ImageStore } from './image-store.js';
import { sha256Hex, type LayerTar } from './layer-store.js';
import { familiarName, familiarString, fullName, isIdentifier, parseNormalizedNamed, referenceString, type ImageReference } from './reference.js';
import { memberHeader } from './tar-member.js';
import { TAR_END, tarPadding } from './tar-writer.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** One image to save and the tags it is saved under (none when named by id). */
export interface SaveItem {
  image: ImageRecord;
  refs: ImageReference[];
}

/** An image's layer tars, held from garbage collection until {@link release}. */
export interface OpenedLayers {
  /** Bottom first, as the image's diff ids. */
  layers: LayerTar[];
  release(): void;
}

/**
 * The uncompressed tar and diff id of each layer of an image, for `docker save` and `docker push`.
 * The layers stay pinned until `release()`, so an `rmi` meanwhile cannot pull files from under a
 * stream being read.
 */
export async function openImageLayers(images: ImageStore, image: ImageRecord): Promise<OpenedLayers> {
  const pinned: string[] = [];
  const release = (): void => {
    for (const c of pinned.splice(0)) images.layers.unpin(c);
  };
  try {
    const layers: LayerTar[] = [];
    for (const chain of image.layers) {
      images.layers.pin(chain);
      pinned.push(chain);
      layers.push(await images.layers.tar(chain));
    }
    return { layers, release };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Docker's rules for the names of `docker save`: an id saves the image untagged, `name:tag` that
 * tag, a bare repository name every tag of it. Unknown names throw NotFound before anything is
 * written.
 */
export function resolveSaveNames(images: ImageStore, names: string[]): SaveItem[] {
  const byId = new Map<string, SaveItem>();
  const add = (image: ImageRecord, ref?: ImageReference): void => {
    let item = byId.get(image.id);
    if (!item) {
      item = { image, refs: [] };
      byId.set(image.id, item);
    }
    if (ref && !item.refs.some((r) => referenceString(r) === referenceString(ref))) item.refs.push(ref);
  };
  for (const name of names) {
    const bareId = isIdentifier(name) || /^sha256:[a-f0-9]{64}$/.test(name);
    if (!bareId) {
      const named = parseNormalizedNamed(name);
      if (!named.tag && !named.digest) {
        const repo = fullName(named);
        let found = false;
        for (const img of images.list()) {
          for (const r of images.refsOf(img.id)) {
            if (r.tag && !r.digest && fullName(r) === repo) {
              add(img, r);
              found = true;
            }
          }
        }
        if (found) continue;
      } else if (named.tag) {
        add(images.get(name), named);
        continue;
      }
    }
    add(images.get(name));
  }
  return [...byId.values()];
}

/** A root-owned 0644 file member of the archive. */
function fileHeader(name: string, size: number, mtime: number): Buffer[] {
  return memberHeader({ name, flag: '0', mode: 0o644, uid: 0, gid: 0, size, mtime });
}

/** A root-owned 0755 folder member of the archive. */
function dirHeader(name: string): Buffer[] {
  return memberHeader({ name, flag: '5', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 });
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/**
 * `docker save`: the archive Docker 25+ writes, an OCI image layout (`index.json`, `oci-layout`,
 * `blobs/sha256/...`) that also carries the docker-archive `manifest.json` and `repositories`,
 * so both old and new loaders read it. Layers are the uncompressed tars their diff ids name,
 * streamed from the layer folders; a layer shared by several images is written once.
 * `silent`: no `save` event (a base image handed to the builder is not a `docker save`).
 */
export async function saveArchive(images: ImageStore, items: SaveItem[], opts: { silent?: boolean } = {}): Promise<Readable> {
  const opened: OpenedLayers[] = [];
  try {
    for (const it of items) opened.push(await openImageLayers(images, it.image));
  } catch (e) {
    for (const o of opened) o.release();
    throw e;
  }
  const release = (): void => {
    for (const o of opened) o.release();
  };

  async function* gen(): AsyncGenerator<Buffer> {
    const written = new Set<string>();
    const file = function* (name: string, data: Buffer, mtime: number): Generator<Buffer> {
      yield* fileHeader(name, data.length, mtime);
      yield data;
      yield tarPadding(data.length);
    };
    yield* dirHeader('blobs/');
    yield* dirHeader('blobs/sha256/');
    const manifestJson: Record<string, unknown>[] = [];
    const index: Record<string, unknown>[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (let n = 0; n < items.length; n++) {
      const { image, refs } = items[n]!;
      const layers = opened[n]!.layers;
      const mtime = image.created ? Math.floor(Date.parse(image.created) / 1000) || 0 : 0;
      const configHex = image.id.slice(image.id.indexOf(':') + 1);
      const configBytes = Buffer.from(images.configJsonOf(image.id));
      if (!written.has(configHex)) {
        written.add(configHex);
        yield* file(`blobs/sha256/${configHex}`, configBytes, mtime);
      }
      for (const l of layers) {
        const hex = l.diffId.slice(l.diffId.indexOf(':') + 1);
        if (written.has(hex)) continue;
        written.add(hex);
        yield* fileHeader(`blobs/sha256/${hex}`, l.size, mtime);
        yield* l.open();
        yield tarPadding(l.size);
      }
      const manifest = json({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: image.id, size: configBytes.length },
        layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.diffId, size: l.size })),
      });
      const manifestHex = sha256Hex(manifest);
      if (!written.has(manifestHex)) {
        written.add(manifestHex);
        yield* file(`blobs/sha256/${manifestHex}`, manifest, mtime);
      }
      const desc = { mediaType: OCI_MANIFEST, digest: `sha256:${manifestHex}`, size: manifest.length };
      if (refs.length === 0) index.push(desc);
      for (const r of refs) {
        index.push({ ...desc, annotations: { 'io.containerd.image.name': referenceString(r), 'org.opencontainers.image.ref.name': r.tag } });
        const top = layers.length ? layers[layers.length - 1]!.diffId : image.id;
        (repositories[familiarName(r)] ??= {})[r.tag!] = top.slice(top.indexOf(':') + 1);
      }
      manifestJson.push({
        Config: `blobs/sha256/${configHex}`,
        RepoTags: refs.length ? refs.map(familiarString) : null,
        Layers: layers.map((l) => `blobs/sha256/${l.diffId.slice(l.diffId.indexOf(':') + 1)}`),
      });
      // moby logs `save` once per image, named by its id, when the image's part is written.
      if (!opts.silent) images.event('save', image.id);
    }
    const now = 0;
    yield* file('index.json', json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index }), now);
    yield* file('manifest.json', json(manifestJson), now);
    yield* file('oci-layout', json({ imageLayoutVersion: '1.0.0' }), now);
    if (Object.keys(repositories).length) yield* file('repositories', json(repositories), now);
    yield TAR_END;
  }

  const stream = Readable.from(gen(), { objectMode: false });
  stream.once('close', release);
  return stream;
}
