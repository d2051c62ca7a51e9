import { randomBytes } from 'node:crypto';
import { NO_EVENTS, type EventSink } from '../events/event-bus.js';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateStore } from '../state/store.js';
import { Conflict, InvalidParameter, NotFound, SystemError, errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { validateVolumeName, volumeNameProblem, goQuote } from './volume-name.js';
import { listPredicate, prunePredicate, type FilterableVolume } from './volume-filter.js';
import { directorySize } from './directory-size.js';

const log = logger('arca:volumes');

/** The label Docker 23+ puts on volumes created without a name (`docker run -v /data`). */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

/** The only volume driver arca has; `""` means it too. */
export const LOCAL_DRIVER = 'local';

/** Driver options Docker's local driver knows; arca knows them but does not mount (yet). */
const LOCAL_DRIVER_OPTS = ['type', 'device', 'o', 'size'];
/** Which local driver options need which others, as Docker checks them on Linux. */
const REQUIRED_WITH: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

/**
 * One named local volume, shaped as Docker's `GET /volumes/{name}` answers. `Labels` and
 * `Options` are `null` when the creator sent none (`docker run -v name:/x`), `{}` when it sent
 * an empty map (`docker volume create`), exactly as Docker keeps them.
 */
export interface VolumeRecord {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  Scope: 'local';
}

/** What `POST /volumes/create` asks for. */
export interface VolumeCreateOptions {
  /** Empty or absent: an anonymous volume with a random 64-hex name. */
  name?: string;
  /** `""`, absent or `local`. */
  driver?: string;
  driverOpts?: Record<string, string> | null;
  labels?: Record<string, string> | null;
}

/** `POST /volumes/prune`'s answer. */
export interface VolumePruneReport {
  VolumesDeleted: string[];
  SpaceReclaimed: number;
}

/** The stored document: everything but the mountpoint, which follows from the folder. */
interface VolumeDoc {
  Name: string;
  Driver: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
}

/** Folders named so are volumes on their way out; no volume name can start with a dot. */
const TRASH_PREFIX = '.trash-';

/** Go's `time.RFC3339` in the daemon's time zone, as Docker prints `CreatedAt`. */
export function formatRfc3339(d: Date): string {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return (
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`
  );
}

/**
 * Named `local` volumes: a folder each under `<root>/volumes/<name>/_data`, one row each in the
 * `volumes` table. The row is the truth; the folder is made before the row is written and
 * removed again if the write fails, so a failed create leaves nothing behind.
 */
export class VolumeManager {
  private usageCheck: (name: string) => string[] = () => [];
  /** Where `docker events` learns of volume create/destroy; the daemon wires its bus. */
  events: EventSink = NO_EVENTS;

  constructor(
    protected readonly store: StateStore,
    protected readonly dir: string,
  ) {
    // 0701 as Docker: others may traverse to a mountpoint they were given, never list names.
    mkdirSync(dir, { recursive: true, mode: 0o701 });
    this.reconcile();
  }

  /** Tells the manager which containers use a volume (their ids), for `rm`, `prune` and `dangling`. */
  setUsageCheck(fn: (name: string) => string[]): void {
    this.usageCheck = fn;
  }

  /**
   * Creates a volume, or returns the existing one of that name unchanged (Docker ignores the new
   * labels and options then). Errors read as Docker's: `create <name>: ...`.
   */
  create(opts: VolumeCreateOptions = {}): VolumeRecord {
    const anonymous = !opts.name;
    const name = opts.name || randomBytes(32).toString('hex');
    const driver = opts.driver || LOCAL_DRIVER;
    if (driver !== LOCAL_DRIVER) {
      throw new NotFound(`create ${name}: error looking up volume plugin ${driver}: plugin ${goQuote(driver)} not found`);
    }
    const existing = this.find(name);
    if (existing) return existing;
    validateVolumeName(name);
    validateDriverOpts(name, opts.driverOpts ?? null);

    let labels = opts.labels ?? null;
    if (anonymous) labels = { ...(labels ?? {}), [ANONYMOUS_LABEL]: '' };
    const doc: VolumeDoc = {
      Name: name,
      Driver: LOCAL_DRIVER,
      CreatedAt: formatRfc3339(new Date()),
      Labels: labels,
      Options: opts.driverOpts ?? null,
    };

    const undo: Array<() => void> = [];
    try {
      const root = join(this.dir, name);
      try {
        mkdirSync(root, { mode: 0o755 });
        undo.push(() => rmSync(root, { recursive: true, force: true }));
      } catch (e) {
        // A folder without a row (made by hand, or left by a crash after start-up's sweep):
        // adopt it as Docker's local driver would, and never delete what we did not make.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      mkdirSync(join(root, '_data'), { recursive: true, mode: 0o755 });
      this.store.tx(() => {
        this.store.db.prepare('INSERT INTO volumes (name, doc) VALUES (?, ?)').run(name, JSON.stringify(doc));
      });
    } catch (e) {
      for (const step of undo.reverse()) {
        try {
          step();
        } catch (u) {
          log.warn('rollback step failed', { volume: name, error: errorMessage(u) });
        }
      }
      throw new SystemError(`create ${name}: ${errorMessage(e)}`, { cause: e });
    }
    this.events.emit('volume', 'create', name, { driver: LOCAL_DRIVER });
    log.debug('volume created', { volume: name, anonymous });
    return this.toRecord(doc);
  }

  /**
   * Returns the volume, creating it when absent (what `docker run -v name:/path` does). An empty
   * name creates an anonymous volume, labelled {@link ANONYMOUS_LABEL}.
   */
  ensure(name: string, labels: Record<string, string> = {}): VolumeRecord {
    return this.create({ name, labels: Object.keys(labels).length > 0 ? labels : null });
  }

  /** The volume called `name`; NotFound `get <name>: no such volume` otherwise. */
  get(name: string): VolumeRecord {
    const rec = this.find(name);
    if (!rec) throw new NotFound(`get ${name}: no such volume`);
    return rec;
  }

  /** Volumes matching Docker's list filters (`name`, `label`, `driver`, `dangling`), by name. */
  list(filters: Map<string, string[]> = new Map()): VolumeRecord[] {
    const keep = listPredicate(filters);
    return this.all().filter((rec) => keep(this.filterable(rec)));
  }

  /**
   * Removes a volume and its data. A volume some container uses is a Conflict even with `force`
   * (as in Docker); `force` only makes a missing volume a success. Callers removing a
   * container's anonymous volumes (`rm -v`) must drop the container from the usage check first.
   */
  remove(name: string, force = false): void {
    const rec = this.find(name);
    if (!rec) {
      if (force) return;
      throw new NotFound(`get ${name}: no such volume`);
    }
    const users = this.usageCheck(name);
    if (users.length > 0) throw new Conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);

    // Move the folder aside first (atomic), then drop the row; a failed row delete moves it back.
    // The data itself is deleted in the background and swept at start-up if the daemon dies.
    const root = join(this.dir, name);
    const trash = join(this.dir, `${TRASH_PREFIX}${randomBytes(8).toString('hex')}`);
    let moved = false;
    try {
      renameSync(root, trash);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Conflict(`remove ${name}: ${errorMessage(e)}`, { cause: e });
      }
    }
    try {
      this.store.tx(() => {
        this.store.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
      });
    } catch (e) {
      if (moved) renameSync(trash, root);
      throw e;
    }
    if (moved) this.discard(trash);
    this.events.emit('volume', 'destroy', name, { driver: LOCAL_DRIVER });
    log.debug('volume removed', { volume: name });
  }

  /**
   * Removes unused local volumes matching Docker's prune filters (`label`, `label!`, `all`).
   * Since API 1.42 only anonymous volumes go unless `all=true`; `allByDefault` restores the old
   * behaviour for older clients.
   */
  prune(filters: Map<string, string[]> = new Map(), allByDefault = false): VolumePruneReport {
    const keep = prunePredicate(filters, ANONYMOUS_LABEL, allByDefault);
    const report: VolumePruneReport = { VolumesDeleted: [], SpaceReclaimed: 0 };
    for (const rec of this.all()) {
      // Volumes with mount options hold no local data; Docker leaves them alone too.
      if (rec.Options && Object.keys(rec.Options).length > 0) continue;
      if (!keep(this.filterable(rec))) continue;
      const size = directorySize(rec.Mountpoint);
      try {
        this.remove(rec.Name);
      } catch (e) {
        log.warn('prune: could not remove volume', { volume: rec.Name, error: errorMessage(e) });
        continue;
      }
      report.VolumesDeleted.push(rec.Name);
      report.SpaceReclaimed += size;
    }
    this.events.emit('volume', 'prune', '', { reclaimed: String(report.SpaceReclaimed) });
    return report;
  }

  private find(name: string): VolumeRecord | undefined {
    const row = this.store.db.prepare('SELECT doc FROM volumes WHERE name = ?').get(name) as { doc: string } | undefined;
    return row ? this.toRecord(JSON.parse(row.doc) as VolumeDoc) : undefined;
  }

  private all(): VolumeRecord[] {
    const rows = this.store.db.prepare('SELECT doc FROM volumes ORDER BY name').all() as Array<{ doc: string }>;
    return rows.map((r) => this.toRecord(JSON.parse(r.doc) as VolumeDoc));
  }

  private filterable(rec: VolumeRecord): FilterableVolume {
    const check = this.usageCheck;
    return {
      Name: rec.Name,
      Driver: rec.Driver,
      Labels: rec.Labels,
      get inUse() {
        return check(rec.Name).length > 0;
      },
    };
  }

  private toRecord(doc: VolumeDoc): VolumeRecord {
    return {
      CreatedAt: doc.CreatedAt,
      Driver: doc.Driver,
      Labels: doc.Labels,
      Mountpoint: join(this.dir, doc.Name, '_data'),
      Name: doc.Name,
      Options: doc.Options,
      Scope: 'local',
    };
  }

  private discard(path: string): void {
    rm(path, { recursive: true, force: true }).catch((e: unknown) =>
      log.warn('could not delete volume data', { path, error: errorMessage(e) }),
    );
  }

  /**
   * Start-up sweep, so that disk and database agree: every row gets its `_data` folder back,
   * folders on their way out are deleted, an empty folder without a row (a create cut short) is
   * removed, and a folder with data but no row is adopted, as Docker's local driver adopts it.
   */
  private reconcile(): void {
    const rows = new Set(this.all().map((r) => r.Name));
    for (const name of rows) {
      const data = join(this.dir, name, '_data');
      try {
        statSync(data);
      } catch {
        log.warn('volume folder missing, recreating it empty', { volume: name });
        mkdirSync(data, { recursive: true, mode: 0o755 });
      }
    }
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      const path = join(this.dir, entry.name);
      if (entry.name.startsWith(TRASH_PREFIX)) {
        this.discard(path);
        continue;
      }
      if (!entry.isDirectory() || rows.has(entry.name) || volumeNameProblem(entry.name)) continue;
      const contents = readdirSync(path);
      const dataEntries = contents.includes('_data') ? readdirSafe(join(path, '_data')) : [];
      if (contents.every((c) => c === '_data') && dataEntries.length === 0) {
        log.info('removing half-created volume folder', { volume: entry.name });
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (!contents.includes('_data')) {
        log.warn('folder in the volumes directory is not a volume, leaving it', { path });
        continue;
      }
      const doc: VolumeDoc = {
        Name: entry.name,
        Driver: LOCAL_DRIVER,
        CreatedAt: formatRfc3339(statSync(path).mtime),
        Labels: null,
        Options: null,
      };
      this.store.db.prepare('INSERT INTO volumes (name, doc) VALUES (?, ?)').run(entry.name, JSON.stringify(doc));
      log.warn('adopted volume folder that had no record', { volume: entry.name });
    }
  }
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/**
 * Docker's local driver checks its options before anything else; arca knows the same ones but
 * does not mount filesystems or enforce quotas, and says so rather than ignoring them.
 */
function validateDriverOpts(name: string, opts: Record<string, string> | null): void {
  if (!opts) return;
  const keys = Object.keys(opts);
  if (keys.length === 0) return;
  for (const k of keys) {
    if (!LOCAL_DRIVER_OPTS.includes(k)) throw new InvalidParameter(`create ${name}: invalid option: ${goQuote(k)}`);
  }
  for (const [k, required] of Object.entries(REQUIRED_WITH)) {
    if (!(k in opts)) continue;
    for (const r of required) {
      if (!(r in opts)) throw new InvalidParameter(`create ${name}: missing required option: ${goQuote(r)}`);
    }
  }
  throw new InvalidParameter(
    `create ${name}: the local driver options ${keys.map(goQuote).join(', ')} are not supported by arca: ` +
      'volumes are plain folders (no mounts, no size quotas)',
  );
}
