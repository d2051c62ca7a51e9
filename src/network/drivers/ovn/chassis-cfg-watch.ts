import { errorMessage } from '../../../errors.js';
import { logger } from '../../../log.js';
import { OvsdbClient } from '../../../ovsdb/ovsdb-client.js';
import type { TableUpdates } from '../../../ovsdb/ovsdb-values.js';

const log = logger('arca:net:ovn:cfg');

interface Waiter {
  cfg: number;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
}

/**
 * The `nb_cfg` this chassis reports installed (SB `Chassis_Private.nb_cfg`), followed with a
 * monitor. ovn-controller raises it once the OpenFlow flows of every NB change up to that number
 * are in br-int, so a waiter for a value is done when it is reached *or passed*. OVSDB's `wait`
 * operation can only ask for equality, which a later bump overtakes; that forced every change to
 * wait, lock held, for its own report before the next one could be written (a learnt DNS answer
 * queued behind a policy apply's revalidator round).
 */
export class ChassisCfgWatch {
  private client?: OvsdbClient;
  private connecting?: Promise<void>;
  /** The last value reported, or -1 while it is unknown. */
  private current = -1;
  /** The highest value NB has handed out for a change (see {@link issued}). */
  private highest = -1;
  private waiters: Waiter[] = [];
  private closed = false;

  constructor(
    private readonly sbSocket: string,
    private readonly chassis: string,
  ) {}

  /**
   * A change's `nb_cfg`, as the NB transaction that bumped it returned it. A value below one seen
   * before means NB was rebuilt and counts from 0 again: the last report belongs to the old
   * numbering and must not satisfy the new one, so it is forgotten until ovn-controller reports.
   */
  issued(cfg: number): void {
    if (cfg < this.highest) this.current = -1;
    this.highest = cfg;
  }

  /** Resolves true once the chassis reports `cfg` (or later) installed, false after `timeoutMs`. */
  async reached(cfg: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    await this.connect();
    if (this.current >= cfg) return true;
    return new Promise((resolve) => {
      const w: Waiter = {
        cfg,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(false);
        }, Math.max(0, deadline - Date.now())),
      };
      this.waiters.push(w);
    });
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.waiters = [];
  }

  private connect(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('chassis cfg watch closed'));
    if (this.client && !this.client.closed) return Promise.resolve();
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const c = await OvsdbClient.connect(this.sbSocket, { timeoutMs: 5000 });
    c.once('close', () => {
      if (this.client !== c) return;
      this.client = undefined;
      this.current = -1;
      // A restarted SB server: waiters in flight must not sit out their timeout for want of a monitor.
      if (this.waiters.length && !this.closed) {
        this.connect().catch((e: unknown) => log.warn('southbound monitor lost', { error: errorMessage(e) }));
      }
    });
    try {
      const m = await c.monitor('OVN_Southbound', { Chassis_Private: { columns: ['name', 'nb_cfg'] } }, (u) => this.onUpdate(u));
      if (this.closed) {
        c.close();
        return;
      }
      this.client = c;
      this.onUpdate(m.initial);
    } catch (e) {
      c.close();
      throw e;
    }
  }

  private onUpdate(u: TableUpdates): void {
    for (const row of Object.values(u['Chassis_Private'] ?? {})) {
      const r = row.new;
      if (r?.['name'] !== this.chassis || typeof r['nb_cfg'] !== 'number') continue;
      this.current = r['nb_cfg'];
    }
    if (this.current < 0) return;
    const done = this.waiters.filter((w) => w.cfg <= this.current);
    if (!done.length) return;
    this.waiters = this.waiters.filter((w) => w.cfg > this.current);
    for (const w of done) {
      clearTimeout(w.timer);
      w.resolve(true);
    }
  }
}
