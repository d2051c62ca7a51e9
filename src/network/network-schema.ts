import type Database from 'better-sqlite3';

/**
 * The network layer's tables, created by the daemon after the store's own (the endpoint and
 * attachment rows reference `containers`, so a removed container takes its rows with it).
 *
 * - `networks`: one Docker network document per row.
 * - `net_attachments`: which networks a container is configured on, in order of attachment, with
 *   the EndpointSettings it asked for; kept while the container is stopped.
 * - `net_seeded`: containers whose create-time networks were copied into `net_attachments`.
 * - `net_endpoints`: live endpoints (running containers, and the namespaces of builds' RUN steps,
 *   which are no containers: hence no foreign key on `container_id`; a trigger drops a removed
 *   container's endpoints, and start-up drops those of owners that are gone), with their
 *   interface, MAC and addresses.
 * - `ipam_addresses`: every reserved address; the primary key makes reservations atomic. Deleting
 *   an endpoint row frees its addresses (trigger), deleting a network frees the rest (cascade).
 * - `net_meta`: small facts (the daemon's IPv6 ULA prefix).
 */
export function migrateNetworkTables(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS networks (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      doc TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS net_attachments (
      container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
      network_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      doc TEXT NOT NULL,
      PRIMARY KEY (container_id, network_id)
    );
    CREATE TABLE IF NOT EXISTS net_seeded (
      container_id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE
    );
  `);
  const endpointsTable = (name: string): string => `
    CREATE TABLE IF NOT EXISTS ${name} (
      id TEXT PRIMARY KEY,
      network_id TEXT NOT NULL REFERENCES networks(id),
      container_id TEXT NOT NULL,
      doc TEXT NOT NULL,
      UNIQUE (network_id, container_id)
    );`;
  const hasOwnerKey = (db.prepare('PRAGMA foreign_key_list(net_endpoints)').all() as { table: string }[]).some((k) => k.table === 'containers');
  if (hasOwnerKey) {
    // Databases from before builds had endpoints: the table is rebuilt without the key (SQLite
    // cannot drop one in place). Its index and release trigger are made again below.
    db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        db.exec(endpointsTable('net_endpoints_next'));
        db.exec('INSERT INTO net_endpoints_next SELECT id, network_id, container_id, doc FROM net_endpoints; DROP TABLE net_endpoints; ALTER TABLE net_endpoints_next RENAME TO net_endpoints;');
      })();
    } finally {
      db.pragma('foreign_keys = ON');
    }
  }
  db.exec(`
    ${endpointsTable('net_endpoints')}
    CREATE INDEX IF NOT EXISTS net_endpoints_container ON net_endpoints(container_id);
    CREATE TRIGGER IF NOT EXISTS containers_drop_endpoints AFTER DELETE ON containers
    BEGIN
      DELETE FROM net_endpoints WHERE container_id = OLD.id;
    END;
    CREATE TABLE IF NOT EXISTS ipam_addresses (
      network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
      address TEXT NOT NULL,
      owner TEXT NOT NULL,
      PRIMARY KEY (network_id, address)
    );
    CREATE INDEX IF NOT EXISTS ipam_addresses_owner ON ipam_addresses(owner);
    CREATE TRIGGER IF NOT EXISTS net_endpoints_release AFTER DELETE ON net_endpoints
    BEGIN
      DELETE FROM ipam_addresses WHERE owner = OLD.id;
    END;
    CREATE TABLE IF NOT EXISTS net_meta (
      key TEXT PRIMARY KEY,
      value TEXT NOT NULL
    );
  `);
}

/** A small fact from `net_meta`. */
export function getNetMeta(db: Database.Database, key: string): string | undefined {
  return (db.prepare('SELECT value FROM net_meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

export function setNetMeta(db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO net_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}
