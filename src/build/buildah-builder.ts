import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KeyedLock } from '../keyed-lock.js';
import { logger } from '../log.js';
import type { ImageRecord, ImageStore } from '../images/image-store.js';
import { loadArchive } from '../images/image-loader.js';
import { saveArchive } from '../images/image-saver.js';
import { run, type RunResult } from '../sys/runner.js';

const log = logger('arca:build:buildah');

/** One `buildah build` as arca runs it. */
export interface BuildahBuild {
  contextDir: string;
  dockerfilePath: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  target?: string;
  noCache: boolean;
  platform?: string;
  /** Bytes of /dev/shm in RUN steps. */
  shmSize?: number;
  /** `--network` value and the DNS/host flags that go with it. */
  network: string;
  networkArgs: string[];
  /** Kills buildah when the client goes away. */
  signal: AbortSignal;
  /** Every line buildah prints, as it prints it. */
  onLine(line: string, stream: 'stdout' | 'stderr'): void;
}

/** A line splitter for a child's output chunks. */
function lineSplitter(emit: (line: string) => void): { push(b: Buffer): void; end(): void } {
  let rest = '';
  return {
    push(b) {
      rest += b.toString('utf8');
      let i: number;
      while ((i = rest.indexOf('\n')) >= 0) {
        emit(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
    },
    end() {
      if (rest) emit(rest);
      rest = '';
    },
  };
}

/**
 * Debian's buildah, given storage and configuration of its own under arca's root (never the
 * system's `/var/lib/containers` or `/etc/containers`): `<root>/build/storage`,
 * `<execRoot>/build/run`, and private registries.conf, policy.json, storage.conf and
 * containers.conf passed through the `CONTAINERS_*` variables. Base images come in from arca's
 * store (saved with {@link saveArchive}), results go back through arca's loader, so their
 * layers are shared with what arca already holds. Buildah's images are its layer cache.
 */
export class BuildahBuilder {
  private readonly base: string;
  private readonly storage: string;
  private readonly runroot: string;
  private readonly conf: string;
  private readonly tmp: string;
  private ready?: Promise<void>;
  /** Image ids buildah holds and the names arca gave them there; loaded once, then kept in step. */
  private known?: Map<string, Set<string>>;
  private readonly importLock = new KeyedLock();
  /** Builds running now, and whether a killed one left a working container to remove. */
  private active = 0;
  private orphans = false;

  constructor(
    private readonly images: ImageStore,
    root: string,
    execRoot: string,
    private readonly runtime: string,
  ) {
    this.base = join(root, 'build');
    this.storage = join(this.base, 'storage');
    this.runroot = join(execRoot, 'build', 'run');
    this.conf = join(this.base, 'conf');
    this.tmp = join(this.base, 'tmp');
  }

  /** A private scratch folder for one build (context, archives); the caller removes it. */
  async scratch(): Promise<string> {
    await this.setUp();
    const p = join(this.tmp, randomBytes(8).toString('hex'));
    await mkdir(p, { recursive: true, mode: 0o700 });
    return p;
  }

  private env(tmpdir: string): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: this.base,
      TMPDIR: tmpdir,
      CONTAINERS_STORAGE_CONF: join(this.conf, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(this.conf, 'registries.conf'),
      CONTAINERS_CONF: join(this.conf, 'containers.conf'),
      REGISTRY_AUTH_FILE: join(this.conf, 'auth.json'),
      BUILDAH_ISOLATION: 'oci',
    };
  }

  private get globalArgs(): string[] {
    return ['buildah', '--root', this.storage, '--runroot', this.runroot, '--storage-driver', 'overlay'];
  }

  private get policyArgs(): string[] {
    return ['--signature-policy', join(this.conf, 'policy.json')];
  }

  /**
   * Runs buildah. `tmpdir`: its TMPDIR, a folder of the caller's scratch space, so that what a
   * killed buildah leaves there goes with that scratch space.
   */
  private buildah(
    args: string[],
    opts: { signal?: AbortSignal; onStdout?: (b: Buffer) => void; onStderr?: (b: Buffer) => void; allowFailure?: boolean; tmpdir?: string } = {},
  ): Promise<RunResult> {
    const { tmpdir, ...rest } = opts;
    return run([...this.globalArgs, ...args], { env: this.env(tmpdir ?? this.tmp), ...rest });
  }

  /** Writes the private configuration once; leftovers of a killed daemon's builds go. */
  setUp(): Promise<void> {
    this.ready ??= (async () => {
      await rm(this.tmp, { recursive: true, force: true });
      for (const d of [this.storage, this.runroot, this.conf, this.tmp]) await mkdir(d, { recursive: true, mode: 0o700 });
      await writeFile(
        join(this.conf, 'storage.conf'),
        `[storage]\ndriver = "overlay"\ngraphroot = "${this.storage}"\nrunroot = "${this.runroot}"\n`,
      );
      // Names without a registry mean Docker Hub, as in Docker; never a prompt (no TTY here).
      await writeFile(join(this.conf, 'registries.conf'), 'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "disabled"\n');
      // Builds only read images arca handed over (--pull=never): nothing to verify signatures of.
      await writeFile(join(this.conf, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
      await writeFile(
        join(this.conf, 'containers.conf'),
        [
          '[containers]',
          'netns = "none"',
          // Not the system's mounts.conf (secrets mounted into every RUN step on some distributions).
          `default_mounts_file = "${join(this.conf, 'mounts.conf')}"`,
          'seccomp_profile = "/usr/share/containers/seccomp.json"',
          '',
          '[engine]',
          `runtime = "${this.runtime}"`,
          'cgroup_manager = "cgroupfs"',
          'events_logger = "none"',
          '',
        ].join('\n'),
      );
      await writeFile(join(this.conf, 'mounts.conf'), '');
      await writeFile(join(this.conf, 'auth.json'), '{}', { mode: 0o600 });
      // Working containers of builds a killed daemon left behind.
      await this.buildah(['rm', '--all'], { allowFailure: true });
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  private async inventory(): Promise<Map<string, Set<string>>> {
    if (this.known) return this.known;
    const r = await this.buildah(['images', '--json', '--no-trunc', '--all']);
    const list = JSON.parse(r.stdout || '[]') as { id: string; names?: string[] | null }[];
    const m = new Map<string, Set<string>>();
    for (const i of list) m.set(i.id.replace(/^sha256:/, ''), new Set(i.names ?? []));
    this.known = m;
    return m;
  }

  /**
   * Makes an image of arca's store available to buildah under `name` (a fully qualified
   * reference, or undefined for one named by id): copied in when buildah does not hold that id,
   * (re)tagged when the name points elsewhere there.
   */
  async provide(image: ImageRecord, name: string | undefined): Promise<void> {
    await this.setUp();
    const hex = image.id.slice(image.id.indexOf(':') + 1);
    await this.importLock.run(hex, async () => {
      const known = await this.inventory();
      if (!known.has(hex)) {
        const dir = await this.scratch();
        try {
          const file = join(dir, 'base.tar');
          await pipeline(await saveArchive(this.images, [{ image, refs: [] }], { silent: true }), createWriteStream(file, { mode: 0o600 }));
          await this.buildah(['pull', ...this.policyArgs, '--quiet', `docker-archive:${file}`], { tmpdir: dir });
          known.set(hex, new Set());
          log.debug('base image copied into build storage', { id: image.id.slice(0, 19) });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      if (name && !known.get(hex)!.has(name)) {
        await this.buildah(['tag', hex, name]);
        for (const names of known.values()) names.delete(name);
        known.get(hex)!.add(name);
      }
    });
  }

  /** Runs the build; returns buildah's image id (the config digest, so arca's id too). */
  async build(b: BuildahBuild): Promise<string> {
    await this.setUp();
    const dir = await this.scratch();
    this.active++;
    try {
      const tmpdir = join(dir, 'tmp');
      await mkdir(tmpdir, { mode: 0o700 });
      const args = [
        'build',
        ...this.policyArgs,
        '--layers',
        '--pull=never',
        '--format=docker',
        '--identity-label=false',
        '--isolation=oci',
        `--runtime=${this.runtime}`,
        '--rm',
        // Docker's classic builder may keep a failed step's container; nothing of a build may stay here.
        '--force-rm',
        // No --iidfile: with one buildah keeps quiet about each step's image ("--> <id>"), which
        // Docker's " ---> <id>" lines come from; the image id is then its last line of output.
        `--file=${b.dockerfilePath}`,
        `--network=${b.network}`,
        ...b.networkArgs,
      ];
      for (const [k, v] of Object.entries(b.buildArgs)) args.push(`--build-arg=${k}=${v}`);
      for (const [k, v] of Object.entries(b.labels)) args.push(`--label=${k}=${v}`);
      if (b.target) args.push(`--target=${b.target}`);
      if (b.noCache) args.push('--no-cache');
      if (b.platform) args.push(`--platform=${b.platform}`);
      // buildah hands the value to the tmpfs mount as written: tmpfs reads k/m/g suffixes, not "b".
      if (b.shmSize) args.push(`--shm-size=${b.shmSize % 1024 === 0 ? `${b.shmSize / 1024}k` : String(b.shmSize)}`);
      args.push(b.contextDir);
      let last = '';
      const out = lineSplitter((l) => {
        last = l;
        b.onLine(this.fullStepId(l), 'stdout');
      });
      const err = lineSplitter((l) => b.onLine(l, 'stderr'));
      let r: RunResult;
      try {
        r = await this.buildah(args, { signal: b.signal, onStdout: (x) => out.push(x), onStderr: (x) => err.push(x), allowFailure: true, tmpdir });
      } finally {
        out.end();
        err.end();
      }
      if (r.code !== 0) {
        // A killed buildah cannot remove its working container itself; which one was its own
        // cannot be told, so they go once no other build is running.
        if (b.signal.aborted) this.orphans = true;
        throw new BuildahError(r.code, r.stderr);
      }
      const hex = /^(?:sha256:)?([0-9a-f]{64})$/.exec(last.trim())?.[1];
      if (!hex) throw new BuildahError(r.code, `buildah ended without an image id (last line: ${last})`);
      const known = await this.inventory();
      if (!known.has(hex)) known.set(hex, new Set());
      return `sha256:${hex}`;
    } finally {
      this.active--;
      if (this.orphans && this.active === 0) {
        this.orphans = false;
        await this.removeContainers();
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * buildah names a committed step's image by its first 11 hex digits (`--> 3c9d1f169d5`);
   * Docker shows 12. The full id is in buildah's image list (the storage's images.json, just
   * written by that commit); a line it cannot complete is passed on as buildah printed it.
   */
  private fullStepId(line: string): string {
    const short = /^--> ([0-9a-f]{11})$/.exec(line)?.[1];
    if (!short) return line;
    try {
      const list = readFileSync(join(this.storage, 'overlay-images', 'images.json'), 'utf8');
      const full = new RegExp(`"id":"(${short}[0-9a-f]{53})"`).exec(list)?.[1];
      return full ? `--> ${full}` : line;
    } catch {
      return line;
    }
  }

  /** Copies a built image from buildah's storage into arca's (unless arca has it already). */
  async export(id: string): Promise<ImageRecord> {
    const have = this.images.byId(id);
    if (have) return have;
    const dir = await this.scratch();
    try {
      const file = join(dir, 'out.tar');
      await this.buildah(['push', ...this.policyArgs, '--quiet', id.replace(/^sha256:/, ''), `docker-archive:${file}`], { tmpdir: dir });
      const noOutput = { progress: () => {}, stream: () => {} };
      const [loaded] = await loadArchive(this.images, createReadStream(file), noOutput, { quiet: true, silent: true });
      if (loaded !== id) log.warn('built image changed id on import', { buildah: id, arca: loaded });
      return this.images.byId(loaded!)!;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Removes working containers (after a build was killed). */
  async removeContainers(): Promise<void> {
    await this.buildah(['rm', '--all'], { allowFailure: true });
  }

  /** `docker builder prune`: drops buildah's whole cache and its copies of base images. */
  async prune(): Promise<void> {
    await this.setUp();
    await this.removeContainers();
    await this.buildah(['rmi', '--all', '--force'], { allowFailure: true });
    this.known = undefined;
  }
}

/** A build that buildah ended with an error; `stderr` holds its messages. */
export class BuildahError extends Error {
  constructor(
    readonly code: number | null,
    readonly stderr: string,
  ) {
    const last = stderr.trim().split('\n').filter((l) => /^Error: /.test(l)).pop() ?? stderr.trim().split('\n').pop() ?? '';
    super(last.replace(/^Error: /, '') || `buildah exited with status ${code}`);
  }
}
