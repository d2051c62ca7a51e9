import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { StateStore } from '../state/store.js';
import { InvalidParameter, NotFound } from '../errors.js';
import { run, which } from '../sys/runner.js';
import { logger } from '../log.js';
import { convertWhiteouts } from './whiteout-converter.js';
import { assembleTar, readTarSplit, recordTarSplit, writeTarSplit } from './tar-split.js';
import { byteMeter, type ByteProgress } from './byte-meter.js';

const log = logger('arca:images:layers');

/** One unpacked, read-only layer as stored. */
export interface LayerRecord {
  /** `sha256:<hex>`: names the folder; depends on the layer and everything below it. */
  chainId: string;
  /** `sha256:<hex>` of the uncompressed layer tar. */
  diffId: string;
  parent: string | null;
  /** Bytes of the unpacked files. */
  size: number;
}

/** A layer's uncompressed tar, byte for byte the one its diff id names. */
export interface LayerTar {
  diffId: string;
  /** Bytes of the tar. */
  size: number;
  /** A fresh stream of the tar; it fails at its end if the bytes do not hash to the diff id. */
  open(): Readable;
}

/** Record of how to rebuild a layer's tar from its folder (see tar-split.ts). */
const TAR_SPLIT = 'tar-split.json.gz';
/** The tar itself, kept only for layers that cannot be rebuilt from their folder. */
const LAYER_TAR = 'layer.tar';

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Chain id of a layer on top of `parent` (OCI image spec: `sha256(parent + " " + diffId)`). */
export function chainIdOf(parent: string | null, diffId: string): string {
  return parent === null ? diffId : `sha256:${sha256Hex(`${parent} ${diffId}`)}`;
}

/** All chain ids of a diff id list, bottom first. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let parent: string | null = null;
  for (const d of diffIds) {
    parent = chainIdOf(parent, d);
    out.push(parent);
  }
  return out;
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

type Compression = 'none' | 'gzip' | 'zstd';

async function sniffCompression(path: string): Promise<Compression> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && buf.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}


/**
 * The layer folders under `<dir>/layers/<hex>/diff`, one per chain id, shared by all images.
 * A layer is unpacked into `<dir>/tmp/<random>` and renamed into place, then recorded in the DB;
 * anything on disk that the DB does not know is debris from a killed daemon and is removed by
 * {@link recover}.
 */
export class LayerStore {
  private readonly inflight = new Map<string, Promise<LayerRecord>>();
  /** Layers that an operation in progress holds (registered but not yet owned by an image). */
  private readonly pins = new Map<string, number>();

  constructor(
    private readonly store: StateStore,
    private readonly dir: string,
  ) {}

  get layersDir(): string {
    return join(this.dir, 'layers');
  }

  /** The folder of one layer; its files are in `diff/`. */
  layerDir(chainId: string): string {
    return join(this.layersDir, hexOf(chainId));
  }

  diffDir(chainId: string): string {
    return join(this.layerDir(chainId), 'diff');
  }

  get(chainId: string): LayerRecord | undefined {
    const row = this.store.db.prepare('SELECT doc FROM layers WHERE chain_id = ?').get(chainId) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as LayerRecord) : undefined;
  }

  has(chainId: string): boolean {
    return this.get(chainId) !== undefined;
  }

  /** A fresh scratch folder under the store (same filesystem, so renames are atomic). */
  async tempDir(): Promise<string> {
    const p = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    await mkdir(p, { recursive: true, mode: 0o700 });
    return p;
  }

  /** Keeps layers from garbage collection while an image is being assembled from them. */
  pin(chainId: string): void {
    this.pins.set(chainId, (this.pins.get(chainId) ?? 0) + 1);
  }

  unpin(chainId: string): void {
    const n = (this.pins.get(chainId) ?? 0) - 1;
    if (n <= 0) this.pins.delete(chainId);
    else this.pins.set(chainId, n);
  }

  /**
   * Decompresses a layer blob (tar, tar+gzip or tar+zstd) into `<scratch>/layer.tar`, hashing it.
   * Returns the diff id and the path of the plain tar.
   */
  async inflate(source: string, scratch: string, onProgress?: ByteProgress): Promise<{ diffId: string; tarPath: string }> {
    const tarPath = join(scratch, `layer-${randomBytes(4).toString('hex')}.tar`);
    const compression = await sniffCompression(source);
    const total = (await stat(source)).size;
    const hash = createHash('sha256');
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    if (compression === 'zstd') {
      if (!which('zstd')) throw new InvalidParameter('zstd-compressed layers need the zstd program');
      const plain = `${tarPath}.zst-out`;
      await run(['zstd', '-d', '-q', '-f', '-o', plain, source]);
      await pipeline(createReadStream(plain), hasher, createWriteStream(tarPath));
      await rm(plain, { force: true });
      onProgress?.(total, total);
    } else {
      try {
        if (compression === 'gzip') {
          await pipeline(createReadStream(source), byteMeter(total, onProgress), createGunzip(), hasher, createWriteStream(tarPath));
        } else {
          await pipeline(createReadStream(source), byteMeter(total, onProgress), hasher, createWriteStream(tarPath));
        }
      } catch (e) {
        throw new InvalidParameter(`invalid layer data: ${(e as Error).message}`, { cause: e });
      }
    }
    return { diffId: `sha256:${hash.digest('hex')}`, tarPath };
  }

  /**
   * Registers a layer from a plain tar on top of `parent`, unpacking it unless that chain id is
   * already stored. The layer comes back pinned: the caller unpins it once an image owns it.
   */
  async register(tarPath: string, diffId: string, parent: string | null): Promise<LayerRecord> {
    const chainId = chainIdOf(parent, diffId);
    const existing = this.get(chainId);
    if (existing) {
      this.pin(chainId);
      return existing;
    }
    let job = this.inflight.get(chainId);
    if (!job) {
      job = this.unpack(tarPath, diffId, parent, chainId).finally(() => this.inflight.delete(chainId));
      this.inflight.set(chainId, job);
    }
    const rec = await job;
    this.pin(chainId);
    return rec;
  }

  private async unpack(tarPath: string, diffId: string, parent: string | null, chainId: string): Promise<LayerRecord> {
    const scratch = await this.tempDir();
    try {
      const diff = join(scratch, 'diff');
      await mkdir(diff, { mode: 0o755 });
      const split = recordTarSplit(tarPath);
      // Awaited after the extraction; a failed extraction must not leave this rejection unheard.
      split.catch(() => undefined);
      await run([
        'tar',
        '-x',
        '-f',
        tarPath,
        '-C',
        diff,
        '--numeric-owner',
        '--same-owner',
        '--same-permissions',
        '--xattrs',
        '--xattrs-include=*',
      ]).catch((e: unknown) => {
        throw new InvalidParameter(`failed to unpack layer ${diffId}: ${(e as Error).message}`, { cause: e });
      });
      const scan = await convertWhiteouts(diff);
      const recorded = await split;
      if (recorded.ok) await writeTarSplit(join(scratch, TAR_SPLIT), recorded.split);
      else {
        log.info('keeping the tar of a layer that cannot be rebuilt from its files', { chainId, reason: recorded.reason });
        await copyFile(tarPath, join(scratch, LAYER_TAR));
      }
      const rec: LayerRecord = { chainId, diffId, parent, size: scan.size };
      await mkdir(this.layersDir, { recursive: true, mode: 0o700 });
      const target = this.layerDir(chainId);
      await rm(target, { recursive: true, force: true });
      await rename(scratch, target);
      this.store.db.prepare('INSERT INTO layers (chain_id, doc) VALUES (?, ?) ON CONFLICT(chain_id) DO UPDATE SET doc = excluded.doc').run(chainId, JSON.stringify(rec));
      log.debug('layer unpacked', { chainId, size: rec.size, whiteouts: scan.whiteouts });
      return rec;
    } catch (e) {
      await rm(scratch, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * The layer's original tar (for save and push), rebuilt from its folder. Pin the layer while
   * the stream is read.
   */
  async tar(chainId: string): Promise<LayerTar> {
    const rec = this.get(chainId);
    if (!rec) throw new NotFound(`layer ${chainId} does not exist`);
    const dir = this.layerDir(chainId);
    try {
      const split = await readTarSplit(join(dir, TAR_SPLIT));
      return { diffId: rec.diffId, size: split.size, open: () => assembleTar(split, this.diffDir(chainId), rec.diffId) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const kept = join(dir, LAYER_TAR);
    let size: number;
    try {
      size = (await stat(kept)).size;
    } catch {
      throw new NotFound(`layer ${rec.diffId} has no tar data (it was stored by an older arca; pull or load its image again)`);
    }
    return { diffId: rec.diffId, size, open: () => createReadStream(kept) };
  }

  /**
   * Deletes layers that no image owns and nobody pins, from the DB then from disk. Returns the
   * removed ones, top of each chain first (the order Docker reports them in).
   */
  async removeUnused(): Promise<LayerRecord[]> {
    const rows = this.store.db
      .prepare('SELECT doc FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)')
      .all() as { doc: string }[];
    const unused = rows.map((r) => JSON.parse(r.doc) as LayerRecord).filter((l) => !this.pins.has(l.chainId) && !this.inflight.has(l.chainId));
    if (unused.length === 0) return [];
    const del = this.store.db.prepare('DELETE FROM layers WHERE chain_id = ?');
    this.store.tx(() => {
      for (const l of unused) del.run(l.chainId);
    });
    const errors: unknown[] = [];
    for (const l of unused) {
      await rm(this.layerDir(l.chainId), { recursive: true, force: true }).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) log.warn('could not remove some layer folders', { errors: errors.map(String) });
    // Children before parents: a layer whose parent is also removed is listed first.
    const depth = (l: LayerRecord): number => {
      let d = 0;
      let p = l.parent;
      while (p) {
        d++;
        p = (this.get(p) ?? unused.find((u) => u.chainId === p))?.parent ?? null;
      }
      return d;
    };
    return unused.sort((a, b) => depth(b) - depth(a));
  }

  /** Removes scratch folders and layer folders the DB does not know; drops DB rows whose folder is gone. */
  async recover(): Promise<void> {
    await rm(join(this.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(this.layersDir, { recursive: true, mode: 0o700 });
    const known = new Set(
      (this.store.db.prepare('SELECT chain_id FROM layers').all() as { chain_id: string }[]).map((r) => hexOf(r.chain_id)),
    );
    for (const name of await readdir(this.layersDir)) {
      if (!known.has(name)) {
        log.info('removing unrecorded layer folder', { name });
        await rm(join(this.layersDir, name), { recursive: true, force: true });
      }
    }
    for (const hex of known) {
      try {
        await stat(join(this.layersDir, hex, 'diff'));
      } catch {
        log.error(`layer sha256:${hex} is recorded but its folder is missing`);
      }
    }
  }
}
