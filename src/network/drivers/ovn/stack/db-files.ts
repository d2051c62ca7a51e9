import { existsSync, renameSync } from 'node:fs';
import { run } from '../../../../sys/runner.js';

/** The schemas Debian's packages ship (ovn-central, openvswitch-switch). */
export const SCHEMAS = {
  OVN_Northbound: '/usr/share/ovn/ovn-nb.ovsschema',
  OVN_Southbound: '/usr/share/ovn/ovn-sb.ovsschema',
  Open_vSwitch: '/usr/share/openvswitch/vswitch.ovsschema',
} as const;

export type DbName = keyof typeof SCHEMAS;

/** What {@link ensureDbFile} found: a usable file, none (made empty), or an unreadable one (moved aside, made empty). */
export type DbFileState = 'ok' | 'created' | 'recreated';

/**
 * Makes sure `file` is a standalone database of schema `db`: `ovsdb-tool db-name` must read its
 * header and name the right schema. A missing file is created empty; an unreadable one is kept as
 * `<file>.bad` (for a person to look at) and replaced by an empty one.
 */
export async function ensureDbFile(file: string, db: DbName): Promise<DbFileState> {
  if (!existsSync(file)) {
    await createDb(file, db);
    return 'created';
  }
  const r = await run(['ovsdb-tool', 'db-name', file], { allowFailure: true });
  if (r.code === 0 && r.stdout.trim() === db) return 'ok';
  await replaceDb(file, db);
  return 'recreated';
}

/** Moves an unusable database aside and creates an empty one in its place. */
export async function replaceDb(file: string, db: DbName): Promise<void> {
  if (existsSync(file)) renameSync(file, `${file}.bad`);
  await createDb(file, db);
}

/** A crash mid-create leaves a file whose header fails the next check, and is then replaced. */
async function createDb(file: string, db: DbName): Promise<void> {
  await run(['ovsdb-tool', 'create', file, SCHEMAS[db]]);
}
