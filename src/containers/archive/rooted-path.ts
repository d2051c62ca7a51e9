import { closeSync, constants as fsc, fstatSync, mkdirSync, openSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { InvalidParameter, NotFound, SystemError } from '../../errors.js';

/** open(2) flags Node does not name. */
export const O_PATH = 0o10000000;
const O_NOFOLLOW = fsc.O_NOFOLLOW;
const O_DIRECTORY = fsc.O_DIRECTORY;
const MAX_LINKS = 255;

/** The path, inside this process, of an open file descriptor: a magic link to the file itself. */
export function fdPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** The same for a child process, which cannot use its own `/proc/self` for the daemon's fds. */
export function fdPathForChild(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}

/** A path resolved inside a root: an O_PATH descriptor of it and of its parent folder. */
export interface ResolvedPath {
  /** O_PATH descriptor of the file itself (the link itself when the last link was not followed). */
  fd: number;
  /** O_PATH descriptor of the folder holding it (the root itself for `/`). */
  parentFd: number;
  /** Its name in that folder; `.` for the root. */
  name: string;
  /** Where it is, as the container sees it: absolute, symlinks resolved. */
  path: string;
  stat: Stats;
}

/** A path that is missing: how far it resolved, for `mkdir -p` style callers. */
export class MissingPath extends NotFound {}

/**
 * A folder treated as `/`, as `openat2(RESOLVE_IN_ROOT)` would: every component of every path,
 * and every symlink met on the way (absolute or with `..`), is resolved inside it, so no path
 * names anything outside. Each step opens the next component with O_PATH|O_NOFOLLOW relative to
 * the descriptor of the folder already resolved (through its `/proc/self/fd` magic link), so a
 * folder swapped for a symlink meanwhile cannot redirect the walk; `..` pops the walk's own stack
 * and never reaches the kernel, so it stops at the root.
 */
export class RootedFs {
  readonly rootFd: number;

  /** Opens `root` (which may itself be a magic link such as `/proc/<pid>/root`). */
  constructor(root: string) {
    this.rootFd = openSync(root, O_PATH | O_DIRECTORY);
  }

  close(): void {
    try {
      closeSync(this.rootFd);
    } catch {
      /* already closed */
    }
  }

  /**
   * Resolves `path` (absolute or not, relative to the root). The last component is followed
   * when it is a symlink only if `followLast` (a trailing `/` or `/.` always follows it, as in
   * Docker). With `create`, missing folders are made (mode 0755) on the way, including the last.
   * The caller closes `fd` and `parentFd` with {@link release}.
   */
  resolve(path: string, opts: { followLast?: boolean; create?: boolean } = {}): ResolvedPath {
    const parts = path.split('/');
    // The open folders from the root down; the root itself is not in it.
    const stack: { fd: number; name: string }[] = [];
    let links = 0;
    let final: { fd: number; name: string; stat: Stats } | undefined;
    const cur = (): number => (stack.length ? stack[stack.length - 1]!.fd : this.rootFd);
    const here = (): string => '/' + stack.map((s) => s.name).join('/');
    try {
      while (parts.length) {
        const p = parts.shift()!;
        if (p === '' || p === '.') continue;
        if (p === '..') {
          const top = stack.pop();
          if (top) closeSync(top.fd);
          continue;
        }
        // Nothing left, not even a trailing `/` or `.`: this is the last component.
        const last = parts.length === 0;
        let fd: number;
        try {
          fd = openSync(fdPath(cur(), p), O_PATH | O_NOFOLLOW);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && opts.create) {
            mkdirSync(fdPath(cur(), p), { mode: 0o755 });
            fd = openSync(fdPath(cur(), p), O_PATH | O_NOFOLLOW);
          } else if (code === 'ENOENT') {
            throw new MissingPath(`lstat ${posix.join(here(), p)}: no such file or directory`);
          } else if (code === 'ENOTDIR') {
            throw new InvalidParameter(`lstat ${posix.join(here(), p)}: not a directory`);
          } else {
            throw new SystemError(`lstat ${posix.join(here(), p)}: ${(e as Error).message}`, { cause: e });
          }
        }
        const st = fstatSync(fd);
        if (st.isSymbolicLink() && (!last || opts.followLast)) {
          if (++links > MAX_LINKS) {
            closeSync(fd);
            throw new InvalidParameter(`${path}: too many levels of symbolic links`);
          }
          // Read through the parent's descriptor: whatever the link says now is resolved in the root.
          let target: string;
          try {
            target = readlinkSync(fdPath(cur(), p));
          } finally {
            closeSync(fd);
          }
          if (target.startsWith('/')) while (stack.length) closeSync(stack.pop()!.fd);
          parts.unshift(...target.split('/'));
          continue;
        }
        if (last) {
          final = { fd, name: p, stat: st };
          break;
        }
        if (!st.isDirectory()) {
          closeSync(fd);
          throw new InvalidParameter(`lstat ${posix.join(here(), p)}: not a directory`);
        }
        stack.push({ fd, name: p });
      }
      if (!final) {
        // The path ended on a folder (or was the root): that folder is the result.
        const top = stack.pop();
        if (!top) {
          const fd = openSync(fdPath(this.rootFd), O_PATH | O_DIRECTORY);
          return { fd, parentFd: openSync(fdPath(this.rootFd), O_PATH | O_DIRECTORY), name: '.', path: '/', stat: fstatSync(fd) };
        }
        final = { fd: top.fd, name: top.name, stat: fstatSync(top.fd) };
      }
      const resolved = posix.join(here(), final.name);
      const parent = stack.pop();
      const parentFd = parent ? parent.fd : openSync(fdPath(this.rootFd), O_PATH | O_DIRECTORY);
      return { fd: final.fd, parentFd, name: final.name, path: resolved, stat: final.stat };
    } finally {
      for (const s of stack) closeSync(s.fd);
    }
  }

  /** Like {@link resolve}, but a missing path is `undefined` instead of an error. */
  tryResolve(path: string, opts: { followLast?: boolean } = {}): ResolvedPath | undefined {
    try {
      return this.resolve(path, opts);
    } catch (e) {
      if (e instanceof MissingPath) return undefined;
      throw e;
    }
  }
}

/** Closes the descriptors of a resolved path. */
export function release(r: ResolvedPath | undefined): void {
  if (!r) return;
  for (const fd of [r.fd, r.parentFd]) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }
}

/** Opens a folder's descriptor for reading entries or metadata calls (never following a link). */
export function openDirNoFollow(parentFd: number, name: string): number {
  return openSync(fdPath(parentFd, name), fsc.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}
