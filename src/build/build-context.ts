import { mkdir, readFile, realpath, rm } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidParameter } from '../errors.js';
import { spoolBody } from '../images/body-spool.js';
import { run } from '../sys/runner.js';

/** A build context unpacked in a private folder, which the caller removes. */
export interface BuildContext {
  /** The unpacked context. */
  dir: string;
  /** Absolute path of the Dockerfile inside it. */
  dockerfilePath: string;
  /** Its text. */
  dockerfile: string;
}

/**
 * Unpacks the request body of `POST /build` (a tar, possibly gzip/bzip2/xz/zstd compressed, as
 * the CLI, compose and docker-py send it) under `scratch`, and reads the Dockerfile named by
 * `dockerfile` (relative to the context, Docker's default `Dockerfile`). `.dockerignore` is
 * applied by the client before sending and again by buildah.
 */
export async function unpackContext(body: Readable, scratch: string, dockerfile: string): Promise<BuildContext> {
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  const remove = (): Promise<void> => rm(scratch, { recursive: true, force: true });
  try {
    const archive = await spoolBody(body, scratch, 'context.tar');
    const dir = join(scratch, 'context');
    await mkdir(dir, { mode: 0o755 });
    await run(['tar', '-x', '-f', archive, '-C', dir, '--no-same-owner', '--delay-directory-restore']).catch((e: unknown) => {
      const msg = (e as { stderr?: string }).stderr?.trim().split('\n')[0] ?? String(e);
      throw new InvalidParameter(`failed to read the build context: ${msg.replace(/^tar: /, '')}`, { cause: e });
    });
    await rm(archive, { force: true });
    const name = dockerfile || 'Dockerfile';
    const root = await realpath(dir);
    let path: string;
    try {
      path = await realpath(join(root, isAbsolute(name) ? name.slice(1) : name));
    } catch {
      // The classic builder's text (moby builder/remotecontext).
      throw new InvalidParameter(`Cannot locate specified Dockerfile: ${name}`);
    }
    if (!path.startsWith(root + sep)) throw new InvalidParameter(`Cannot locate specified Dockerfile: ${name}`);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new InvalidParameter(`Cannot locate specified Dockerfile: ${name}`, { cause: e });
    }
    return { dir: root, dockerfilePath: path, dockerfile: text };
  } catch (e) {
    await remove();
    throw e;
  }
}
