import type { Stats } from 'node:fs';

/** `X-Docker-Container-Path-Stat`: what Docker's `ContainerPathStat` holds. */
export interface ContainerPathStat {
  name: string;
  size: number;
  /** A Go `os.FileMode`: permission bits plus Go's own type bits (not the Unix `S_IFMT` ones). */
  mode: number;
  mtime: string;
  linkTarget: string;
}

// Go's os.FileMode type bits (io/fs): the CLI tests these, e.g. `Mode&os.ModeSymlink`.
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;
const MODE_DEVICE = 2 ** 26;
const MODE_NAMED_PIPE = 2 ** 25;
const MODE_SOCKET = 2 ** 24;
const MODE_SETUID = 2 ** 23;
const MODE_SETGID = 2 ** 22;
const MODE_CHAR_DEVICE = 2 ** 21;
const MODE_STICKY = 2 ** 20;

/** The Go `os.FileMode` of an lstat result, as `os.Lstat(...).Mode()` gives it. */
export function goFileMode(st: Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m += MODE_DIR;
  else if (st.isSymbolicLink()) m += MODE_SYMLINK;
  else if (st.isBlockDevice()) m += MODE_DEVICE;
  else if (st.isCharacterDevice()) m += MODE_DEVICE + MODE_CHAR_DEVICE;
  else if (st.isFIFO()) m += MODE_NAMED_PIPE;
  else if (st.isSocket()) m += MODE_SOCKET;
  if (st.mode & 0o4000) m += MODE_SETUID;
  if (st.mode & 0o2000) m += MODE_SETGID;
  if (st.mode & 0o1000) m += MODE_STICKY;
  return m;
}

/** Go's time.Time JSON form (RFC 3339 with nanoseconds, trailing zeros dropped). */
export function goTime(st: Stats): string {
  const ns = BigInt(Math.round(st.mtimeMs * 1e6));
  const sec = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  const f = frac === 0n ? '' : '.' + frac.toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${f}Z`;
}

/** The header value: base64 of the JSON. */
export function encodePathStat(s: ContainerPathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}
