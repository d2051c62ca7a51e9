import { run } from '../sys/runner.js';

/** getfattr's escaping of odd bytes in names (`\012`, `\\`). */
function unescapeName(s: string): string {
  return s.replace(/\\([0-7]{3}|\\)/g, (_m, g: string) => (g === '\\' ? '\\' : String.fromCharCode(parseInt(g, 8))));
}

/**
 * The folders under `root` that overlayfs marks opaque (`trusted.overlay.opaque=y`): one getfattr
 * walk for the whole tree, as Node cannot read extended attributes. Paths relative to `root`,
 * starting with `/`.
 */
export async function opaqueDirs(root: string): Promise<Set<string>> {
  const res = await run(['getfattr', '-R', '-P', '-h', '--absolute-names', '-n', 'trusted.overlay.opaque', '--', root], { allowFailure: true });
  const out = new Set<string>();
  let file: string | undefined;
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('# file: ')) file = unescapeName(line.slice(8));
    else if (file && line === 'trusted.overlay.opaque="y"') {
      const rel = file.slice(root.replace(/\/+$/, '').length) || '/';
      out.add(rel);
      file = undefined;
    }
  }
  return out;
}
