import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { MNT_DETACH, native } from '../sys/native.js';
import { run } from '../sys/runner.js';
import { logger } from '../log.js';

const log = logger('arca:netns');

/** Namespaces kept ready: a start takes one instead of paying two `ip` execs. */
const POOL_SIZE = 2;

export const NETNS_DIR = '/run/netns';

/**
 * Named network namespaces (`ip netns`), one per container that does not share the host's or
 * another container's. Names carry the daemon's tag so two daemons on one machine (tests) never
 * touch each other's.
 */
export class NetnsManager {
  private readonly pool: string[] = [];
  private filling?: Promise<void>;
  private closed = false;

  /**
   * @param poolFile where the pooled names are listed (one a line), so that tools and tests can
   *   tell a ready namespace from a leaked one. Written before a pooled namespace is made.
   */
  constructor(
    private readonly tag: string,
    private readonly poolFile?: string,
  ) {}

  private writePool(extra?: string): void {
    if (!this.poolFile) return;
    const names = extra ? [...this.pool, extra] : this.pool;
    try {
      writeFileSync(this.poolFile, names.map((n) => n + '\n').join(''));
    } catch (e) {
      log.warn('cannot write the netns pool list', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** The name a container's namespace had before pooling (still honoured for old records). */
  nameFor(containerId: string): string {
    return `arca-${this.tag}-${containerId.slice(0, 12)}`;
  }

  /**
   * A ready namespace (loopback up) for a starting container, from the pool when it has one.
   * The caller owns it from here: it records the name and deletes it when done.
   */
  async take(): Promise<string> {
    const name = this.pool.shift();
    this.writePool();
    this.refill();
    if (name && existsSync(this.pathOf(name))) return name;
    const fresh = `arca-${this.tag}-n${randomBytes(5).toString('hex')}`;
    await this.create(fresh);
    return fresh;
  }

  /** Names held in the pool (not leftovers, though no container owns them yet). */
  pooled(): string[] {
    return [...this.pool];
  }

  /** Tops the pool up in the background, one namespace at a time. */
  refill(): void {
    if (this.filling || this.closed || this.pool.length >= POOL_SIZE) return;
    this.filling = (async () => {
      try {
        while (!this.closed && this.pool.length < POOL_SIZE) {
          const name = `arca-${this.tag}-n${randomBytes(5).toString('hex')}`;
          this.writePool(name);
          try {
            await this.create(name);
          } catch (e) {
            this.writePool();
            await this.delete(name);
            throw e;
          }
          if (this.closed) await this.delete(name);
          else this.pool.push(name);
          this.writePool();
        }
      } catch (e) {
        log.warn('netns pool refill failed', { error: e instanceof Error ? e.message : String(e) });
      } finally {
        this.filling = undefined;
      }
    })();
  }

  /** Stops refilling and removes the pooled namespaces (a daemon that is killed leaves them to the next start-up sweep). */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
    for (const name of this.pool.splice(0)) await this.delete(name);
    this.writePool();
  }

  pathOf(name: string): string {
    return `${NETNS_DIR}/${name}`;
  }

  /** Creates the namespace with its loopback up. Returns its path. */
  async create(name: string): Promise<string> {
    if (!existsSync(this.pathOf(name))) await run(['ip', 'netns', 'add', name]);
    await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return this.pathOf(name);
  }

  /** Deletes it; already gone is success. */
  async delete(name: string): Promise<void> {
    const path = this.pathOf(name);
    if (!existsSync(path)) return;
    const n = native();
    if (!n) {
      await run(['ip', 'netns', 'delete', name], { allowFailure: true });
      return;
    }
    // What `ip netns delete` does, without its exec: detach the bind mount, remove the file. The
    // kernel tears the namespace down (and any veth pair inside) once nothing else holds it.
    await n.umount(path, MNT_DETACH).catch(() => {});
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Every container (and build) namespace this daemon owns, by name. */
  list(): string[] {
    let names: string[] = [];
    try {
      names = readdirSync(NETNS_DIR);
    } catch {
      return [];
    }
    // Only the names this class and the builder make (`<12 hex>`, `n<10 hex>`, `b<10 hex>`): a driver's
    // own namespace under the same prefix (ovn's switch, `arca-<tag>-ovs`) is not a container leftover.
    const mine = new RegExp(`^arca-${this.tag}-(?:[0-9a-f]{12}|[nb][0-9a-f]{10})$`);
    return names.filter((n) => mine.test(n));
  }
}
