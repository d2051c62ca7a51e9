import type Database from 'better-sqlite3';
import { InvalidParameter, NotFound } from '../../errors.js';
import { logger } from '../../log.js';
import { validatePolicy } from './policy-parse.js';
import type { PolicyDoc, StoredPolicy } from './policy-types.js';

const log = logger('arca:net:policy');

/**
 * The `policies` table: one validated {@link PolicyDoc} per row, by name, with its creation and
 * last replacement times (RFC 3339). Policies name networks, not ids, so no foreign key: a policy
 * outlives its network and applies again to the next network of that name.
 */
export function migratePolicyTables(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS policies (
      name TEXT PRIMARY KEY,
      doc TEXT NOT NULL,
      created TEXT NOT NULL,
      updated TEXT NOT NULL
    );
  `);
}

interface Row {
  name: string;
  doc: string;
  created: string;
  updated: string;
}

/**
 * Owns the stored policies. Every change is one transaction, validated before anything is
 * written; listeners registered with {@link onChange} run after each successful change (the daemon
 * recompiles and enforces there), and {@link settled} lets a caller wait for them.
 */
export class PolicyManager {
  private readonly listeners: Array<() => void | Promise<void>> = [];
  private pending: Promise<void> = Promise.resolve();
  private readonly stmts: {
    all: Database.Statement<[], Row>;
    get: Database.Statement<[string], Row>;
    upsert: Database.Statement<[string, string, string, string]>;
    del: Database.Statement<[string]>;
  };

  /** Creates the table when missing. */
  constructor(private readonly db: Database.Database) {
    migratePolicyTables(db);
    this.stmts = {
      all: db.prepare('SELECT name, doc, created, updated FROM policies ORDER BY name'),
      get: db.prepare('SELECT name, doc, created, updated FROM policies WHERE name = ?'),
      upsert: db.prepare(
        'INSERT INTO policies (name, doc, created, updated) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET doc = excluded.doc, updated = excluded.updated',
      ),
      del: db.prepare('DELETE FROM policies WHERE name = ?'),
    };
  }

  /** Every stored policy, by name. */
  list(): StoredPolicy[] {
    return this.stmts.all.all().map(toStored);
  }

  /** @throws NotFound `policy "NAME" not found`. */
  get(name: string): StoredPolicy {
    const row = this.stmts.get.get(name);
    if (!row) throw new NotFound(`policy "${name}" not found`);
    return toStored(row);
  }

  /** The documents alone, by name: what the compiler takes. */
  docs(): PolicyDoc[] {
    return this.stmts.all.all().map((r) => JSON.parse(r.doc) as PolicyDoc);
  }

  /** Creates or replaces one policy (validated again: the caller may hand anything). */
  put(doc: PolicyDoc): 'created' | 'replaced' {
    return this.applyAll([doc])[0]!.result;
  }

  /**
   * Creates or replaces every document, in one transaction: all or nothing. Every document is
   * validated first, and a name given twice is refused.
   */
  applyAll(docs: PolicyDoc[]): Array<{ name: string; result: 'created' | 'replaced' }> {
    const valid = docs.map((d, i) => validatePolicy(d, docs.length > 1 ? `document ${i + 1}` : 'policy'));
    const seen = new Set<string>();
    for (const d of valid) {
      if (seen.has(d.name)) throw new InvalidParameter(`policy "${d.name}" is given twice`);
      seen.add(d.name);
    }
    const now = new Date().toISOString();
    const results = this.db.transaction(() =>
      valid.map((d) => {
        const existed = this.stmts.get.get(d.name) !== undefined;
        this.stmts.upsert.run(d.name, JSON.stringify(d), now, now);
        return { name: d.name, result: existed ? ('replaced' as const) : ('created' as const) };
      }),
    )();
    this.changed();
    return results;
  }

  /** @throws NotFound when no policy has that name. */
  remove(name: string): void {
    if (this.stmts.del.run(name).changes === 0) throw new NotFound(`policy "${name}" not found`);
    this.changed();
  }

  /** Registers a listener called after every successful change. */
  onChange(cb: () => void | Promise<void>): void {
    this.listeners.push(cb);
  }

  /**
   * Resolves when the listeners of every change so far have finished (their failures are logged,
   * not thrown: the change itself is stored either way).
   */
  settled(): Promise<void> {
    return this.pending;
  }

  private changed(): void {
    // Listeners run one change after another, so a slow enforcement never overtakes a later one.
    this.pending = this.pending.then(async () => {
      for (const cb of this.listeners) {
        try {
          await cb();
        } catch (err) {
          log.error('applying the changed policies failed', { error: (err as Error).message });
        }
      }
    });
  }
}

function toStored(r: Row): StoredPolicy {
  return { ...(JSON.parse(r.doc) as PolicyDoc), created: r.created, updated: r.updated };
}
