import { run } from '../sys/runner.js';

/** getfattr's escaping of odd bytes in names (`\012`, `\\`). */
function unescapeName(s: string): string {
  return s.replace(/\\([0-7]{3}|\\)/g, (_m, g: string) => (g === '\\' ? '\\' : String.fromCharCode(parseInt(g, 8))));
}

/**
 * Extended attributes a layer carries (file capabilities above all): those of the `security.` and
 * `user.` namespaces under `root`, from one getfattr walk (Node cannot read them). overlayfs's own
 * `trusted.overlay.*` and SELinux labels are left out, as Docker leaves them out of layers.
 * Keys are paths relative to `root`, starting with `/`.
 */
export async function fileXattrs(root: string): Promise<Map<string, [string, Buffer][]>> {
  const res = await run(['getfattr', '-R', '-P', '-h', '--absolute-names', '-d', '-m', '^(security|user)\\.', '-e', 'hex', '--', root], { allowFailure: true });
  const out = new Map<string, [string, Buffer][]>();
  const prefix = root.replace(/\/+$/, '');
  let file: string | undefined;
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      file = unescapeName(line.slice(8)).slice(prefix.length) || '/';
      continue;
    }
    const m = /^([^=]+)=0x([0-9a-fA-F]*)$/.exec(line);
    if (!file || !m || m[1] === 'security.selinux' || m[1]!.startsWith('user.overlay.')) continue;
    let list = out.get(file);
    if (!list) out.set(file, (list = []));
    list.push([m[1]!, Buffer.from(m[2]!, 'hex')]);
  }
  return out;
}
