import { run } from '../sys/runner.js';

/** getfattr's escaping of odd bytes in names (`\012`, `\\`). */
function unescapeName(s: string): string {
  return s.replace(/\\([0-7]{3}|\\)/g, (_m, g: string) => (g === '\\' ? '\\' : String.fromCharCode(parseInt(g, 8))));
}

const OPAQUE = 'trusted.overlay.opaque';
const OPAQUE_PATTERN = '^trusted\\.overlay\\.opaque$';

/**
 * The extended attributes under `root` whose names match `pattern` (an extended regex), from one
 * getfattr walk, as Node cannot read them. Keys are paths relative to `root`, starting with `/`.
 */
async function readXattrs(root: string, pattern: string): Promise<Map<string, [string, Buffer][]>> {
  const res = await run(['getfattr', '-R', '-P', '-h', '--absolute-names', '-d', '-m', pattern, '-e', 'hex', '--', root], { allowFailure: true });
  const out = new Map<string, [string, Buffer][]>();
  const prefix = root.replace(/\/+$/, '');
  let file: string | undefined;
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      file = unescapeName(line.slice(8)).slice(prefix.length) || '/';
      continue;
    }
    const m = /^([^=]+)=0x([0-9a-fA-F]*)$/.exec(line);
    if (!file || !m) continue;
    let list = out.get(file);
    if (!list) out.set(file, (list = []));
    list.push([m[1]!, Buffer.from(m[2]!, 'hex')]);
  }
  return out;
}

/** The folders of `found` that overlayfs marks opaque (`trusted.overlay.opaque=y`). */
function opaqueOf(found: Map<string, [string, Buffer][]>): Set<string> {
  const out = new Set<string>();
  for (const [path, list] of found) if (list.some(([k, v]) => k === OPAQUE && v.toString('latin1') === 'y')) out.add(path);
  return out;
}

/** The folders under `root` that overlayfs marks opaque, relative to `root`, starting with `/`. */
export async function opaqueDirs(root: string): Promise<Set<string>> {
  return opaqueOf(await readXattrs(root, OPAQUE_PATTERN));
}

/** What a layer of an overlay upper dir takes from its extended attributes. */
export interface UpperXattrs {
  /** Folders overlayfs marks opaque. */
  opaque: Set<string>;
  /**
   * Extended attributes the layer carries (file capabilities above all): those of the `security.`
   * and `user.` namespaces. overlayfs's own and SELinux labels are left out, as Docker leaves them
   * out of layers.
   */
  xattrs: Map<string, [string, Buffer][]>;
}

/** Both, from one getfattr walk of the upper dir. Keys are relative to `root`, starting with `/`. */
export async function upperXattrs(root: string): Promise<UpperXattrs> {
  const found = await readXattrs(root, `^(security|user)\\.|${OPAQUE_PATTERN}`);
  const opaque = opaqueOf(found);
  const xattrs = new Map<string, [string, Buffer][]>();
  for (const [path, list] of found) {
    const kept = list.filter(([k]) => k !== OPAQUE && k !== 'security.selinux' && !k.startsWith('user.overlay.'));
    if (kept.length) xattrs.set(path, kept);
  }
  return { opaque, xattrs };
}
