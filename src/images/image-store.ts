import { join } from 'node:path';
import type { StateStore } from '../state/store.js';
import type { DaemonConfig } from '../daemon.js';
import { Conflict, InvalidParameter, NotFound } from '../errors.js';
import { logger } from '../log.js';
import { NO_EVENTS, type EventSink } from '../events/event-bus.js';
import { LayerStore, chainIds, sha256Hex, type LayerRecord } from './layer-store.js';
import {
  familiarName,
  familiarString,
  fullName,
  isIdentifier,
  parseNormalizedNamed,
  parseStored,
  referenceString,
  withDefaultTag,
  type ImageReference,
} from './reference.js';

const log = logger('arca:images');

/** The OCI/Docker image config's `config` part, as Docker's inspect shows it. */
export interface ImageRunConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Hostname?: string;
  OnBuild?: string[] | null;
  Shell?: string[] | null;
  ArgsEscaped?: boolean;
  Healthcheck?: Record<string, unknown>;
}

/** One entry of the image config's `history`. */
export interface ImageHistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config JSON (OCI image spec + Docker's extra fields). */
export interface ImageConfigDoc {
  config?: ImageRunConfig;
  architecture?: string;
  variant?: string;
  os?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: ImageHistoryEntry[];
  [k: string]: unknown;
}

/** One image as stored. */
export interface ImageRecord {
  /** `sha256:<hex>` of the config JSON. */
  id: string;
  /** Familiar `name:tag` strings, sorted. */
  repoTags: string[];
  /** Familiar `name@sha256:...` strings, sorted. */
  repoDigests: string[];
  /** RFC 3339 creation time from the config, or '' when absent. */
  created: string;
  /** Bytes of all layers. */
  size: number;
  /** The image config JSON (architecture, os, config, rootfs, history, ...). */
  config: ImageConfigDoc;
  /** Layer chain ids, bottom first. */
  layers: string[];
  /** Layer diff ids, bottom first. */
  diffIds: string[];
  /** Parent image id (legacy docker-archive parent links), or ''. */
  parent: string;
  /** When the image was last tagged through `tag` or `import` (Docker's `Metadata.LastTagTime`). */
  lastTagTime: string | null;
}

/** An image to store: its exact config bytes and its layers (registered, pinned), bottom first. */
export interface NewImage {
  configJson: string;
  layers: LayerRecord[];
  parent?: string;
}

/** One line of a DELETE /images answer. */
export type DeleteItem = { Untagged: string } | { Deleted: string };

interface ImageDoc {
  id: string;
  configJson: string;
  layers: string[];
  size: number;
  parent?: string;
  lastTagTime?: string;
}

export function shortId(id: string): string {
  return id.slice(id.indexOf(':') + 1, id.indexOf(':') + 13);
}

/** Docker's `isImageIDPrefix`: is `name` a (possibly `sha256:`-prefixed) prefix of the id? */
function isIdPrefix(id: string, name: string): boolean {
  return id.startsWith(name) || id.slice(id.indexOf(':') + 1).startsWith(name);
}

/**
 * Images and their layers. Each layer is unpacked once into its own read-only folder
 * (whiteouts converted to overlayfs form) and shared by every image and container using it.
 */
export class ImageStore {
  private usageCheck: (imageId: string) => string[] = () => [];
  readonly layers: LayerStore;
  /** Where `docker events` learns of image events; the daemon wires its bus. */
  events: EventSink = NO_EVENTS;

  constructor(
    protected readonly store: StateStore,
    protected readonly dir: string,
    protected readonly config: DaemonConfig,
  ) {
    this.layers = new LayerStore(store, dir);
  }

  /**
   * Emits an image event as moby's `LogImageEvent(id, name, action)` does: the image's labels plus
   * `name`. `id` is the image id, or the reference for `pull` and `push`.
   */
  event(action: string, id: string, name = id): void {
    let labels: Record<string, string> = {};
    try {
      labels = this.get(id).config.config?.Labels ?? {};
    } catch {
      /* gone already (delete) */
    }
    this.events.emit('image', action, id, { ...labels, name });
  }

  /** Registries spoken to over plain HTTP (besides loopback). */
  get insecureRegistries(): string[] {
    return this.config.insecureRegistries ?? [];
  }

  /** Tells which containers use an image (for 409 on rmi without force). */
  setUsageCheck(fn: (imageId: string) => string[]): void {
    this.usageCheck = fn;
  }

  /** Container ids using an image. */
  usersOf(imageId: string): string[] {
    return this.usageCheck(imageId);
  }

  /** Removes half-unpacked layers and temp files left by a killed daemon. */
  async recover(): Promise<void> {
    await this.layers.recover();
    const removed = await this.layers.removeUnused();
    if (removed.length) log.info('removed layers no image uses', { count: removed.length });
  }

  private docOf(id: string): ImageDoc | undefined {
    const row = this.store.db.prepare('SELECT doc FROM images WHERE id = ?').get(id) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as ImageDoc) : undefined;
  }

  private record(doc: ImageDoc): ImageRecord {
    const config = JSON.parse(doc.configJson) as ImageConfigDoc;
    const refs = this.refsOf(doc.id);
    const tags = refs.filter((r) => r.tag && !r.digest).map(familiarString).sort();
    const digests = refs.filter((r) => r.digest).map(familiarString).sort();
    return {
      id: doc.id,
      repoTags: tags,
      repoDigests: digests,
      created: typeof config.created === 'string' ? config.created : '',
      size: doc.size,
      config,
      layers: doc.layers,
      diffIds: config.rootfs?.diff_ids ?? [],
      parent: doc.parent ?? '',
      lastTagTime: doc.lastTagTime ?? null,
    };
  }

  /** The references (tags and digests) pointing at an image. */
  refsOf(imageId: string): ImageReference[] {
    const rows = this.store.db.prepare('SELECT ref FROM image_refs WHERE image_id = ?').all(imageId) as { ref: string }[];
    return rows.map((r) => parseStored(r.ref));
  }

  /** The image id a normalised reference points at. */
  lookup(ref: ImageReference): string | undefined {
    const row = this.store.db.prepare('SELECT image_id FROM image_refs WHERE ref = ?').get(referenceString(ref)) as
      | { image_id: string }
      | undefined;
    return row?.image_id;
  }

  /** An image by its full id (`sha256:<hex>`). */
  byId(id: string): ImageRecord | undefined {
    const doc = this.docOf(id);
    return doc ? this.record(doc) : undefined;
  }

  /** The exact config bytes an image id is the hash of (for save and push). */
  configJsonOf(id: string): string {
    const doc = this.docOf(id);
    if (!doc) throw new NotFound(`No such image: ${id}`);
    return doc.configJson;
  }

  /**
   * Resolves a reference (`busybox`, `busybox:1`, `localhost:5000/x@sha256:...`), a full or
   * short id, or `sha256:<id>`. Throws NotFound `No such image: <ref>`.
   */
  get(ref: string): ImageRecord {
    if (isIdentifier(ref)) return this.byIdOrThrow(`sha256:${ref}`, `sha256:${ref}`);
    if (/^sha256:[a-f0-9]{64}$/.test(ref)) return this.byIdOrThrow(ref, ref);
    const named = parseNormalizedNamed(ref);
    const key: ImageReference = named.digest ? { domain: named.domain, path: named.path, digest: named.digest } : withDefaultTag(named);
    const id = this.lookup(key);
    if (id) {
      const doc = this.docOf(id);
      if (doc) return this.record(doc);
    }
    const found = this.searchId(ref);
    if (found) return found;
    throw new NotFound(`No such image: ${familiarString(withDefaultTag(named))}`);
  }

  private byIdOrThrow(id: string, shown: string): ImageRecord {
    const rec = this.byId(id);
    if (!rec) throw new NotFound(`No such image: ${shown}`);
    return rec;
  }

  /** A unique id prefix (`abc123`, `sha256:abc123`), as Docker's truncindex search. */
  private searchId(s: string): ImageRecord | undefined {
    const hex = s.startsWith('sha256:') ? s.slice(7) : s;
    if (!/^[a-f0-9]+$/.test(hex)) return undefined;
    const rows = this.store.db
      .prepare("SELECT doc FROM images WHERE id >= ? AND id < ? LIMIT 2")
      .all(`sha256:${hex}`, `sha256:${hex}g`) as { doc: string }[];
    if (rows.length !== 1) return undefined;
    return this.record(JSON.parse(rows[0]!.doc) as ImageDoc);
  }

  /** How many images are stored (for `/info`). */
  count(): number {
    return (this.store.db.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n;
  }

  /** Every stored image. */
  list(): ImageRecord[] {
    const rows = this.store.db.prepare('SELECT doc FROM images').all() as { doc: string }[];
    return rows.map((r) => this.record(JSON.parse(r.doc) as ImageDoc));
  }

  /** Ids of images whose parent is `id` (legacy parent links only). */
  children(id: string): string[] {
    return this.list()
      .filter((i) => i.parent === id)
      .map((i) => i.id);
  }

  /** The overlayfs lower dirs for an image, top layer first (overlay's `lowerdir` order). */
  lowerDirs(image: ImageRecord): string[] {
    return [...image.layers].reverse().map((c) => this.layers.diffDir(c));
  }

  /** Folder data for inspect's `GraphDriver` (overlay2 shape). */
  graphDriverData(image: ImageRecord): Record<string, string> {
    if (image.layers.length === 0) return {};
    const dirs = this.lowerDirs(image);
    const top = this.layers.layerDir(image.layers[image.layers.length - 1]!);
    const data: Record<string, string> = {
      MergedDir: join(top, 'merged'),
      UpperDir: dirs[0]!,
      WorkDir: join(top, 'work'),
    };
    if (dirs.length > 1) data.LowerDir = dirs.slice(1).join(':');
    return data;
  }

  /**
   * Stores an image (if new) and points `refs` at it, all in one transaction. Returns its id and,
   * for each ref that used to point at another image, that image's id.
   */
  commit(img: NewImage, refs: ImageReference[], opts: { tagTime?: boolean } = {}): { id: string; moved: Map<string, string> } {
    let config: ImageConfigDoc;
    try {
      config = JSON.parse(img.configJson) as ImageConfigDoc;
    } catch (e) {
      throw new InvalidParameter(`invalid image config: ${(e as Error).message}`);
    }
    if (typeof config !== 'object' || config === null || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
      throw new InvalidParameter('invalid image JSON, no RootFS key');
    }
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== img.layers.length || diffIds.some((d, i) => d !== img.layers[i]!.diffId)) {
      throw new InvalidParameter('image config rootfs does not match its layers');
    }
    const chain = chainIds(diffIds);
    if (chain.some((c, i) => c !== img.layers[i]!.chainId)) throw new InvalidParameter('image layers are not a chain');
    const id = `sha256:${sha256Hex(img.configJson)}`;
    const moved = new Map<string, string>();
    this.store.tx(() => {
      const existing = this.docOf(id);
      const now = new Date().toISOString();
      const doc: ImageDoc = existing ?? {
        id,
        configJson: img.configJson,
        layers: chain,
        size: img.layers.reduce((n, l) => n + l.size, 0),
      };
      if (img.parent) doc.parent = img.parent;
      if (opts.tagTime && refs.length > 0) doc.lastTagTime = now;
      this.store.db.prepare('INSERT INTO images (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc').run(id, JSON.stringify(doc));
      const link = this.store.db.prepare('INSERT OR IGNORE INTO image_layers (image_id, chain_id) VALUES (?, ?)');
      for (const c of chain) link.run(id, c);
      for (const r of refs) {
        const prev = this.lookup(r);
        if (prev && prev !== id) moved.set(referenceString(r), prev);
        this.store.db.prepare('INSERT INTO image_refs (ref, image_id) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id').run(referenceString(r), id);
      }
    });
    return { id, moved };
  }

  /** Runs fn in one store transaction (several commits that must land together). */
  transaction<T>(fn: () => T): T {
    return this.store.tx(fn);
  }

  /** Points a tag at an image (POST /images/{name}/tag). */
  tag(image: ImageRecord, ref: ImageReference): void {
    this.store.tx(() => {
      this.store.db.prepare('INSERT INTO image_refs (ref, image_id) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id').run(referenceString(ref), image.id);
      const doc = this.docOf(image.id)!;
      doc.lastTagTime = new Date().toISOString();
      this.store.db.prepare('UPDATE images SET doc = ? WHERE id = ?').run(JSON.stringify(doc), image.id);
    });
    this.event('tag', image.id, familiarString(ref));
  }

  private deleteRef(ref: ImageReference): void {
    const id = this.lookup(ref);
    this.store.db.prepare('DELETE FROM image_refs WHERE ref = ?').run(referenceString(ref));
    if (id) this.event('untag', id);
  }

  /**
   * DELETE /images/{name}, following Docker's rules: a name only untags unless it was the last
   * reference; an id deletes the image; containers using it block both unless forced.
   */
  async remove(name: string, opts: { force?: boolean; prune?: boolean } = {}): Promise<DeleteItem[]> {
    const img = this.get(name);
    const records: DeleteItem[] = [];
    let refs = this.refsOf(img.id);
    let removedRepositoryRef = false;
    if (!isIdPrefix(img.id, name)) {
      const users = this.usersOf(img.id);
      if (!opts.force && isSingleReference(refs) && users.length > 0) {
        throw new Conflict(
          `conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(users[0]!)} is using its referenced image ${shortId(img.id)}`,
        );
      }
      const parsed = parseNormalizedNamed(name);
      const ref: ImageReference = parsed.digest ? { domain: parsed.domain, path: parsed.path, digest: parsed.digest } : withDefaultTag(parsed);
      if (this.lookup(ref) !== img.id) throw new NotFound(`No such image: ${familiarString(ref)}`);
      this.deleteRef(ref);
      records.push({ Untagged: familiarString(ref) });
      refs = this.refsOf(img.id);
      if (!ref.digest) {
        const sameRepoTag = refs.some((r) => !r.digest && fullName(r) === fullName(ref));
        if (!sameRepoTag) {
          const remaining: ImageReference[] = [];
          for (const r of refs) {
            if (r.digest && fullName(r) === fullName(ref)) {
              this.deleteRef(r);
              records.push({ Untagged: familiarString(r) });
            } else remaining.push(r);
          }
          refs = remaining;
        }
      }
      if (refs.length > 0) return records;
      removedRepositoryRef = true;
    } else if (isSingleReference(refs)) {
      if (!opts.force) this.checkConflicts(img, { soft: true, activeReference: false });
      for (const r of refs) {
        this.deleteRef(r);
        records.push({ Untagged: familiarString(r) });
      }
    }
    await this.deleteHelper(img.id, records, !!opts.force, opts.prune ?? true, removedRepositoryRef);
    return records;
  }

  private checkConflicts(img: ImageRecord, mask: { soft: boolean; activeReference: boolean }): void {
    if (this.children(img.id).length > 0) {
      throw new Conflict(`conflict: unable to delete ${shortId(img.id)} (cannot be forced) - image has dependent child images`);
    }
    if (!mask.soft) return;
    if (mask.activeReference && this.refsOf(img.id).length > 0) {
      throw new Conflict(`conflict: unable to delete ${shortId(img.id)} (must be forced) - image is referenced in multiple repositories`);
    }
    const users = this.usersOf(img.id);
    if (users.length > 0) {
      throw new Conflict(
        `conflict: unable to delete ${shortId(img.id)} (must be forced) - image is being used by stopped container ${shortId(users[0]!)}`,
      );
    }
  }

  private async deleteHelper(id: string, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const img = this.byId(id);
    if (!img) return;
    try {
      this.checkConflicts(img, { soft: !force, activeReference: true });
    } catch (e) {
      if (quiet && (img.repoTags.length > 0 || this.usersOf(id).length > 0)) return;
      throw e;
    }
    const refs = this.refsOf(id);
    if (force && this.usersOf(id).length > 0) {
      // The layers are mounted by a container: untag, but keep the image (it shows as <none>)
      // rather than pull the lower dirs from under the container.
      this.store.tx(() => refs.forEach((r) => this.deleteRef(r)));
      for (const r of refs) records.push({ Untagged: familiarString(r) });
      return;
    }
    this.store.tx(() => {
      refs.forEach((r) => this.deleteRef(r));
      this.store.db.prepare('DELETE FROM images WHERE id = ?').run(id);
    });
    for (const r of refs) records.push({ Untagged: familiarString(r) });
    records.push({ Deleted: id });
    this.event('delete', id);
    for (const l of await this.layers.removeUnused()) records.push({ Deleted: l.chainId });
    if (prune && img.parent) await this.deleteHelper(img.parent, records, false, true, true);
  }

  /**
   * POST /images/prune: removes dangling images (or, with `danglingOnly` false, every image no
   * container uses) that pass `keep`. Conflicts skip an image silently, as Docker does.
   */
  async prune(danglingOnly: boolean, keep: (img: ImageRecord) => boolean): Promise<{ deleted: DeleteItem[]; reclaimed: number }> {
    const sizes = new Map<string, number>();
    const deleted: DeleteItem[] = [];
    for (const img of this.list()) {
      if (danglingOnly && !this.isDangling(img)) continue;
      if (img.repoTags.length === 0 && img.repoDigests.length === 0 && this.children(img.id).length > 0) continue;
      if (!keep(img)) continue;
      for (const c of img.layers) sizes.set(c, this.layers.get(c)?.size ?? 0);
      const refs = this.refsOf(img.id);
      const names = refs.length > 0 ? refs.map(familiarString) : [img.id.slice(7)];
      for (const name of names) {
        try {
          deleted.push(...(await this.remove(name, { prune: true })));
        } catch (e) {
          if (e instanceof Conflict || e instanceof NotFound) continue;
          throw e;
        }
      }
    }
    let reclaimed = 0;
    for (const d of deleted) if ('Deleted' in d) reclaimed += sizes.get(d.Deleted) ?? 0;
    this.events.emit('image', 'prune', '', { reclaimed: String(reclaimed) });
    return { deleted, reclaimed };
  }

  /** Is the image without tags (digest references alone do not count)? */
  isDangling(img: ImageRecord): boolean {
    return img.repoTags.length === 0;
  }

  /** Familiar name of a reference; re-exported for the API layer's messages. */
  static familiar(ref: ImageReference): string {
    return familiarName(ref);
  }
}

/**
 * Docker's `isSingleReference`: all references belong to one repository and at most one of them
 * is a tag. False for none.
 */
function isSingleReference(refs: ImageReference[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  let single: ImageReference | undefined;
  const names = new Set<string>();
  for (const r of refs) {
    if (r.digest) names.add(fullName(r));
    else if (!single) {
      names.add(fullName(r));
      single = r;
    } else return false;
  }
  single ??= refs[0]!;
  return names.size === 1 && names.has(fullName(single));
}

