import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../sys/runner.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/** What a walk of an unpacked layer found. */
export interface LayerScan {
  /** Bytes of all non-directory entries (hard links counted once), as Docker's `directory.Size`. */
  size: number;
  whiteouts: number;
  opaqueDirs: number;
}

/**
 * Rewrites AUFS-style whiteouts of an unpacked layer into overlayfs form, in place:
 * `.wh.name` becomes a 0:0 character device `name`, and `.wh..wh..opq` in a folder marks that
 * folder opaque (`trusted.overlay.opaque=y`). Also measures the layer while walking it.
 */
export async function convertWhiteouts(root: string): Promise<LayerScan> {
  const scan: LayerScan = { size: 0, whiteouts: 0, opaqueDirs: 0 };
  const seenInodes = new Set<string>();
  const opaque: string[] = [];
  const devices: string[] = [];

  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.name === OPAQUE_MARKER) {
        opaque.push(dir);
        await rm(p, { force: true });
        continue;
      }
      if (e.name.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
        // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) means nothing to overlayfs.
        await rm(p, { recursive: true, force: true });
        continue;
      }
      if (e.name.startsWith(WHITEOUT_PREFIX)) {
        await rm(p, { recursive: true, force: true });
        devices.push(join(dir, e.name.slice(WHITEOUT_PREFIX.length)));
        continue;
      }
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      const st = await lstat(p);
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1) {
        if (seenInodes.has(key)) continue;
        seenInodes.add(key);
      }
      scan.size += st.size;
    }
  };
  await walk(root);

  for (const dev of devices) {
    // A whiteout of a name that is also present in the same layer: the whiteout wins.
    await rm(dev, { recursive: true, force: true });
    await run(['mknod', '-m', '0', dev, 'c', '0', '0']);
  }
  for (let i = 0; i < opaque.length; i += 200) {
    await run(['setfattr', '-n', 'trusted.overlay.opaque', '-v', 'y', ...opaque.slice(i, i + 200)]);
  }
  scan.whiteouts = devices.length;
  scan.opaqueDirs = opaque.length;
  return scan;
}
