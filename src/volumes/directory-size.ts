import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Bytes used by the files under `dir`, as Docker's `directory.Size` counts them for
 * `SpaceReclaimed`: regular file sizes, each hard-linked inode once, folders not counted.
 * Unreadable entries are skipped; a missing folder is 0.
 */
export function directorySize(dir: string): number {
  const seen = new Set<bigint>();
  let total = 0;
  const walk = (path: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(path);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = join(path, name);
      let st;
      try {
        st = lstatSync(p, { bigint: true });
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        walk(p);
        continue;
      }
      if (st.size === 0n || seen.has(st.ino)) continue;
      seen.add(st.ino);
      total += Number(st.size);
    }
  };
  walk(dir);
  return total;
}
