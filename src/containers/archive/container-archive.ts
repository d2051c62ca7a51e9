import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidParameter, NotFound, SystemError, errorMessage } from '../../errors.js';
import { logger } from '../../log.js';
import type { EventBus } from '../../events/event-bus.js';
import type { ContainerManager } from '../container-manager.js';
import type { ContainerRecord } from '../container-record.js';
import { resolveUser } from '../etc-files.js';
import { ContainerRootAccess, type ContainerRoot } from './container-root.js';
import { encodePathStat, goFileMode, goTime, type ContainerPathStat } from './path-stat.js';
import { RootedExtractor } from './rooted-extractor.js';
import { fdPath, fdPathForChild, MissingPath, release, type ResolvedPath, type RootedFs } from './rooted-path.js';
import { TarReader } from './tar-reader.js';
import { memberHeader } from '../../images/tar-member.js';
import { TAR_END, tarFileData } from '../../images/tar-writer.js';

const log = logger('arca:containers:archive');

/** Docker's 404 for a path missing in a container (its `containerFileNotFound`). */
function fileNotFound(path: string, ref: string): NotFound {
  return new NotFound(`Could not find the file ${path} in container ${ref}`);
}

/** The path as Docker takes it: made absolute and cleaned, a trailing `/` or `/.` kept. */
export function containerAbsPath(path: string): string {
  const clean = posix.normalize(posix.join('/', path)).replace(/(.)\/+$/, '$1');
  if (path.endsWith('/.') || path === '.') return clean === '/' ? '/.' : `${clean}/.`;
  if (path.endsWith('/') && clean !== '/') return `${clean}/`;
  return clean;
}

/** Docker's `Base` of a cleaned path: the last element, `/` for the root. */
function baseOf(abs: string): string {
  if (abs === '/') return '/';
  if (abs.endsWith('/.')) return '.';
  return posix.basename(abs.replace(/\/+$/, '')) || '/';
}

/** A GNU tar `--transform` regex or replacement, escaped (delimiter `,`). */
function sedEscape(s: string, replacement: boolean): string {
  return replacement ? s.replace(/[\\&,]/g, '\\$&') : s.replace(/[\\.*[\]^$,]/g, '\\$&');
}

export interface CopyToOptions {
  noOverwriteDirNonDir: boolean;
  copyUIDGID: boolean;
}

/** The archive endpoints of containers: `docker cp` both ways, its stat, and `docker export`. */
export class ContainerArchive {
  private readonly roots: ContainerRootAccess;

  constructor(
    private readonly containers: ContainerManager,
    private readonly events?: EventBus,
  ) {
    this.roots = new ContainerRootAccess(containers);
  }

  private statOf(fs: RootedFs, abs: string, ref: string, live: boolean): { stat: ContainerPathStat; resolved: ResolvedPath } {
    let r: ResolvedPath;
    try {
      r = fs.resolve(abs, { followLast: false });
    } catch (e) {
      if (e instanceof MissingPath) throw fileNotFound(abs, ref);
      throw e;
    }
    if (live && insidePseudoFs(r.path)) {
      release(r);
      throw fileNotFound(abs, ref);
    }
    let linkTarget = '';
    if (r.stat.isSymbolicLink()) {
      // The link resolved all the way, inside the container, as the CLI's `-L` wants it.
      try {
        const t = fs.resolve(abs, { followLast: true });
        linkTarget = t.path;
        release(t);
      } catch {
        // Dangling: where it points, made absolute as Docker's FollowSymlinkInScope would.
        const target = readLinkVia(r.parentFd, r.name);
        linkTarget = posix.normalize(target.startsWith('/') ? target : posix.join(posix.dirname(r.path), target));
      }
    }
    const stat: ContainerPathStat = { name: baseOf(abs), size: r.stat.size, mode: goFileMode(r.stat), mtime: goTime(r.stat), linkTarget };
    return { stat, resolved: r };
  }

  /** HEAD /containers/{id}/archive: the stat header's value. */
  async stat(ref: string, path: string): Promise<string> {
    if (!path) throw new InvalidParameter('Path cannot be empty');
    const abs = containerAbsPath(path);
    return this.roots.with(ref, { mounts: true }, async ({ fs, live }) => {
      const { stat, resolved } = this.statOf(fs, abs, ref, live);
      release(resolved);
      return encodePathStat(stat);
    });
  }

  /**
   * GET /containers/{id}/archive: a tar of `path` (a symlink as itself, a trailing `/.` meaning
   * the folder's contents): one regular file is written here from its descriptor, anything else
   * streamed from GNU tar working in the resolved folder. `begin` gets the stat header before the
   * first byte and gives the stream to write to.
   */
  async copyFrom(ref: string, path: string, begin: (statHeader: string) => Writable): Promise<void> {
    if (!path) throw new InvalidParameter('Path cannot be empty');
    const abs = containerAbsPath(path);
    await this.roots.with(ref, { mounts: true }, async ({ fs, c, live }) => {
      const { stat, resolved } = this.statOf(fs, abs, ref, live);
      try {
        let cwdFd = resolved.parentFd;
        let member = resolved.name;
        let rename: string | undefined;
        if (abs.endsWith('/.') || resolved.name === '.') {
          cwdFd = resolved.fd;
          member = '.';
        } else if (resolved.name !== stat.name) {
          // `link/` followed to `target`: the entries are named after what was asked (Docker's rebase).
          rename = stat.name;
        }
        if (resolved.stat.isFile() && member !== '.') {
          await sendFile(resolved, rename ?? member, begin(encodePathStat(stat)));
          this.events?.container('archive-path', c);
          return;
        }
        const argv = ['-c', '-f', '-', '--numeric-owner', '--sparse'];
        if (rename) argv.push(`--transform=s,^${sedEscape(member, false)},${sedEscape(rename, true)},S`);
        if (live) argv.push(...pseudoFsExcludes(resolved.path, member));
        argv.push('--', member);
        await runTar(argv, fdPathForChild(cwdFd), begin(encodePathStat(stat)));
        this.events?.container('archive-path', c);
      } finally {
        release(resolved);
      }
    });
  }

  /** PUT /containers/{id}/archive: unpacks a tar (plain or gzip) into the folder `path`. */
  async copyTo(ref: string, path: string, body: Readable, opts: CopyToOptions): Promise<void> {
    if (!path) throw new InvalidParameter('Path cannot be empty');
    const abs = containerAbsPath(path);
    await this.roots.with(ref, { mounts: true }, async ({ fs, c, live }) => {
      let dest: ResolvedPath;
      try {
        dest = fs.resolve(abs, { followLast: true });
      } catch (e) {
        if (e instanceof MissingPath) throw fileNotFound(abs, ref);
        throw e;
      }
      if (live && (insidePseudoFs(dest.path) || PSEUDO_FS.includes(dest.path))) {
        release(dest);
        throw fileNotFound(abs, ref);
      }
      try {
        if (!dest.stat.isDirectory()) throw new InvalidParameter('extraction point is not a directory');
        const mount = coveringMount(c, dest.path);
        if (mount && !mount.RW) throw new InvalidParameter('mounted volume is marked read-only');
        if (!mount && c.HostConfig.ReadonlyRootfs) throw new InvalidParameter('container rootfs is marked read-only');
        const chown = opts.copyUIDGID && c.Config.User ? this.userIds(fs, c) : undefined;
        const extractor = new RootedExtractor(fs, dest.path, { noOverwriteDirNonDir: opts.noOverwriteDirNonDir, chown });
        try {
          await pipeline(body, new TarReader(extractor));
          this.events?.container('extract-to-dir', c);
        } catch (e) {
          extractor.abort();
          throw e instanceof InvalidParameter || e instanceof NotFound ? e : new SystemError(errorMessage(e), { cause: e });
        }
      } finally {
        release(dest);
      }
    });
  }

  /** The uid and gid of the container's configured user, from its own /etc/passwd and /etc/group. */
  private userIds(fs: RootedFs, c: ContainerRecord): { uid: number; gid: number } {
    const read = (p: string): string => {
      const r = fs.tryResolve(p, { followLast: true });
      if (!r) return '';
      try {
        const fd = openSync(fdPath(r.fd), fsc.O_RDONLY);
        try {
          return readFileSync(fd, 'utf8');
        } finally {
          closeSync(fd);
        }
      } catch {
        return '';
      } finally {
        release(r);
      }
    };
    const u = resolveUser('/', c.Config.User, read);
    return { uid: u.uid, gid: u.gid };
  }

  /** GET /containers/{id}/export: the container's own filesystem (no volumes), as one tar. */
  async export(ref: string, begin: () => Writable): Promise<void> {
    await this.roots.with(ref, { mounts: false }, async (root: ContainerRoot) => {
      const names = readdirSync(root.rootfs).sort();
      const out = begin();
      if (names.length === 0) {
        out.end(TAR_END);
        return;
      }
      await runTar(['-c', '-f', '-', '--numeric-owner', '--sparse', '--', ...names], root.rootfs, out);
      this.events?.container('export', root.c);
    });
  }
}

/** What the kernel fills in, seen in a running container's own view: archived as empty folders. */
const PSEUDO_FS = ['/proc', '/sys'];

/** Is this path inside `/proc` or `/sys`, which Docker's rootfs view has as empty folders? */
function insidePseudoFs(path: string): boolean {
  return PSEUDO_FS.some((p) => path.startsWith(p + '/'));
}

/**
 * GNU tar excludes for the contents of `/proc` and `/sys` under the folder being archived: Docker
 * reads a container's files from its rootfs, where they are empty mount points, and tar must not
 * wander into /proc/kcore and the like.
 */
function pseudoFsExcludes(resolved: string, member: string): string[] {
  const out: string[] = [];
  for (const p of PSEUDO_FS) {
    if (p !== resolved && !p.startsWith(resolved === '/' ? '/' : resolved + '/')) continue;
    const rel = member + p.slice(resolved === '/' ? 0 : resolved.length);
    out.push(`--exclude=${rel}/*`);
  }
  return out.length ? ['--anchored', ...out] : [];
}

/**
 * A one-file archive written here rather than by tar: the file is read through the descriptor
 * the resolution holds, in large chunks straight into the answer, exactly the size stat gave.
 */
async function sendFile(r: ResolvedPath, name: string, out: Writable): Promise<void> {
  // Reopened through the magic link of the O_PATH descriptor: the very file resolved, no new walk.
  const fd = openSync(fdPath(r.fd), fsc.O_RDONLY);
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const size = st.size;
  async function* gen(): AsyncGenerator<Buffer> {
    yield* memberHeader({ name, flag: '0', mode: st.mode, uid: st.uid, gid: st.gid, size, mtime: Math.floor(st.mtimeMs / 1000) });
    yield* tarFileData(fd, size);
    yield TAR_END;
  }
  try {
    await pipeline(Readable.from(gen(), { objectMode: false }), out);
  } finally {
    closeSync(fd);
  }
}

function readLinkVia(parentFd: number, name: string): string {
  try {
    return readlinkSync(fdPath(parentFd, name));
  } catch {
    return '';
  }
}

/** The mount whose destination holds `path` (the deepest one), if any. */
function coveringMount(c: ContainerRecord, path: string): ContainerRecord['Mounts'][number] | undefined {
  let best: ContainerRecord['Mounts'][number] | undefined;
  for (const m of c.Mounts) {
    const d = posix.normalize(m.Destination).replace(/\/+$/, '') || '/';
    if (path === d || path.startsWith(d + '/')) {
      if (!best || d.length > best.Destination.length) best = m;
    }
  }
  return best;
}

/** Runs GNU tar in `cwd` with its output piped to `out`; ends `out`. */
async function runTar(args: string[], cwd: string, out: Writable): Promise<void> {
  const child = spawn('tar', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
  try {
    await pipeline(child.stdout, out);
  } catch (e) {
    // The client went away: stop reading the container's files.
    child.kill('SIGKILL');
    await exited.catch(() => {});
    throw e;
  }
  const code = await exited;
  // 1 is "some files changed while read": the archive is still whole (GNU tar).
  if (code !== 0 && code !== 1) {
    log.warn('tar failed', { code, stderr: stderr.trim() });
    throw new SystemError(`tar: ${stderr.trim() || `exit status ${code}`}`);
  }
}
