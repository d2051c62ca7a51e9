import { spawn } from 'node:child_process';
import { mkdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run, which, CommandError } from '../sys/runner.js';
import { SystemError } from '../errors.js';
import { logger } from '../log.js';
import type { CreateSpec, ExecSpec, Runtime } from './runtime.js';
import { updateArgs, type ResourceLimits } from './resources.js';
import { CrunSeccompBpf, crunCompiler, toolchainStamp } from './seccomp/crun-bpf.js';

const log = logger('arca:runtime');

/** Error text a runtime create/exec failed with, kept verbatim for Docker-style messages. */
export class RuntimeError extends SystemError {}

/**
 * runc or crun under conmon. conmon double-forks, so it is not our child: it holds the
 * container's stdio, writes the k8s-file log, and writes `<exitDir>/<id>` when the container
 * exits, whether the daemon is alive or not.
 */
export class ConmonRuntime implements Runtime {
  readonly exitDir: string;
  readonly socketDir: string;
  private readonly stateRoot: string;
  private readonly runtimeBin: string;
  private readonly conmonBin: string;
  private readonly seccompBpf: CrunSeccompBpf | undefined;

  constructor(
    readonly name: string,
    execRoot: string,
  ) {
    this.stateRoot = join(execRoot, name);
    this.exitDir = join(execRoot, 'exits');
    this.socketDir = join(execRoot, 'sockets');
    for (const d of [this.stateRoot, this.exitDir, this.socketDir]) mkdirSync(d, { recursive: true });
    const bin = which(name);
    if (!bin) throw new SystemError(`OCI runtime "${name}" not found in PATH (apt-get install ${name})`);
    this.runtimeBin = name === 'crun' && hybridCgroups() ? CRUN_HYBRID_WRAPPER : bin;
    const conmon = which('conmon');
    if (!conmon) throw new SystemError('conmon not found in PATH (apt-get install conmon)');
    this.conmonBin = conmon;
    if (name === 'crun') {
      const toolchain = [bin, ...LIBSECCOMP];
      this.seccompBpf = new CrunSeccompBpf(crunCompiler(this.runtimeBin, join(execRoot, 'crun-seccomp')), () => toolchainStamp(toolchain));
    }
  }

  prepareSpec(spec: Record<string, unknown>): void {
    this.seccompBpf?.annotate(spec);
  }

  private rt(...args: string[]): string[] {
    return [this.runtimeBin, `--root=${this.stateRoot}`, ...args];
  }

  /** The conmon arguments containers and exec sessions share. */
  private conmonArgs(o: { cid: string; uuid: string; bundle: string; pidFile: string; conmonDir: string; logPath: string; exitDir: string }): string[] {
    return [
      '--api-version', '1',
      '-c', o.cid,
      '-u', o.uuid,
      '-n', o.uuid,
      '-r', this.runtimeBin,
      '-b', o.bundle,
      '-p', o.pidFile,
      '-P', join(o.conmonDir, 'conmon.pid'),
      '-l', `k8s-file:${o.logPath}`,
      '--exit-dir', o.exitDir,
      '--socket-dir-path', this.socketDir,
      '--runtime-arg', `--root=${this.stateRoot}`,
      '--log-level', 'error',
      '--no-sync-log',
    ];
  }

  create(spec: CreateSpec): Promise<{ pid: number; conmonPid: number }> {
    const args = this.conmonArgs({
      cid: spec.id,
      uuid: spec.id,
      bundle: spec.bundle,
      pidFile: join(spec.bundle, 'init.pid'),
      conmonDir: spec.bundle,
      logPath: spec.logPath,
      exitDir: this.exitDir,
    });
    if (spec.stdin) args.push('-i');
    if (spec.stdin && spec.leaveStdinOpen) args.push('--leave-stdin-open');
    if (spec.tty) args.push('-t');
    if (spec.logSizeMax) args.push('--log-size-max', String(spec.logSizeMax));
    return this.spawnConmon(args, spec.bundle);
  }

  execWithConmon(spec: ExecSpec): Promise<{ pid: number; conmonPid: number }> {
    // conmon names an exec's exit file after the container, and puts the attach socket and
    // ctl fifo in the bundle folder: give each session its own of both.
    mkdirSync(join(spec.dir, 'exits'), { recursive: true });
    const args = this.conmonArgs({
      cid: spec.containerId,
      uuid: spec.execId,
      bundle: spec.dir,
      pidFile: join(spec.dir, 'exec.pid'),
      conmonDir: spec.dir,
      logPath: spec.logPath,
      exitDir: join(spec.dir, 'exits'),
    });
    args.push('-0', spec.dir, '-e', '--exec-process-spec', spec.processPath);
    if (spec.stdin) args.push('-i');
    if (spec.tty) args.push('-t');
    return this.spawnConmon(args, spec.dir);
  }

  /** Spawns conmon and reads `{"data": pid}` (or a negative code and a message) from its sync pipe. */
  private spawnConmon(args: string[], dir: string): Promise<{ pid: number; conmonPid: number }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.conmonBin, args, {
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
        detached: true,
        cwd: dir,
      });
      let sync = '';
      let stderr = '';
      let settled = false;
      const finish = (err: Error | undefined, pid?: number): void => {
        if (settled) return;
        settled = true;
        if (err) return reject(err);
        let conmonPid = 0;
        try {
          conmonPid = Number(readFileSync(join(dir, 'conmon.pid'), 'utf8').trim()) || 0;
        } catch {
          /* written by conmon's child; may lag */
        }
        resolve({ pid: pid!, conmonPid });
      };
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      const pipe = child.stdio[3] as NodeJS.ReadableStream;
      pipe.on('data', (b: Buffer) => {
        sync += b.toString();
        const nl = sync.indexOf('\n');
        if (nl < 0) return;
        let msg: { data?: number; message?: string };
        try {
          msg = JSON.parse(sync.slice(0, nl)) as { data?: number; message?: string };
        } catch {
          return finish(new RuntimeError(`conmon sent an unreadable sync message: ${sync.trim()}`));
        }
        if (typeof msg.data === 'number' && msg.data > 0) finish(undefined, msg.data);
        else finish(new RuntimeError(cleanRuntimeMessage(msg.message ?? stderr) || `${this.name} create failed`));
      });
      pipe.on('end', () => {
        if (!settled) finish(new RuntimeError(cleanRuntimeMessage(stderr) || 'conmon exited before the container was created'));
      });
      child.on('error', (e) => finish(new RuntimeError(`conmon: ${e.message}`)));
      child.unref();
    });
  }

  /**
   * A created runc container waits in its init, blocked writing to `<state>/exec.fifo`; what
   * `runc start` does is read that fifo to its end and remove it. Doing the same here saves a
   * runtime exec (~20 ms on this machine) on every start. Anything unexpected (no fifo, nothing
   * to read) goes through the runtime's own `start`.
   */
  async start(id: string): Promise<void> {
    const fifo = join(this.stateRoot, id, 'exec.fifo');
    if (this.name === 'runc' && existsSync(fifo)) {
      const data = await readFile(fifo).catch(() => undefined);
      if (data && data.length > 0) {
        await rm(fifo, { force: true });
        return;
      }
    }
    await this.call(['start', id]);
  }

  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.call(all ? ['kill', '--all', id, signal] : ['kill', id, signal]);
  }

  async delete(id: string, force = false): Promise<void> {
    // No state folder: nothing to delete, and no runc exec to pay for.
    if (!existsSync(join(this.stateRoot, id))) return;
    try {
      await run(this.rt('delete', ...(force ? ['--force'] : []), id));
    } catch (err) {
      if (err instanceof CommandError && /does not exist|not found/.test(err.stderr)) return;
      throw err;
    }
  }

  async pause(id: string): Promise<void> {
    await this.call(['pause', id]);
  }

  async update(id: string, limits: ResourceLimits): Promise<void> {
    await this.call(['update', ...updateArgs(limits), id]);
  }

  async resume(id: string): Promise<void> {
    await this.call(['resume', id]);
  }

  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    if (!existsSync(join(this.stateRoot, id))) return undefined;
    const res = await run(this.rt('state', id), { allowFailure: true });
    if (res.code !== 0) return undefined;
    const st = JSON.parse(res.stdout) as { status: string; pid: number };
    return { status: st.status, pid: st.pid };
  }

  async pids(id: string): Promise<number[]> {
    const res = await this.call(['ps', '--format', 'json', id]);
    return (JSON.parse(res.stdout || '[]') as number[] | null) ?? [];
  }

  execArgv(id: string, processPath: string): string[] {
    return this.rt('exec', '--process', processPath, id);
  }

  private async call(args: string[]): Promise<{ stdout: string }> {
    try {
      return await run(this.rt(...args));
    } catch (err) {
      if (err instanceof CommandError) {
        log.debug('runtime call failed', { args, stderr: err.stderr });
        throw new RuntimeError(cleanRuntimeMessage(err.stderr) || err.message, { cause: err });
      }
      throw err;
    }
  }
}

/** Where distributions put the libseccomp crun loads: part of what a compiled filter depends on. */
const LIBSECCOMP = ['/lib/x86_64-linux-gnu/libseccomp.so.2', '/lib/aarch64-linux-gnu/libseccomp.so.2', '/usr/lib64/libseccomp.so.2', '/usr/lib/libseccomp.so.2'];

/** Wrapper that runs crun in a mount namespace without the cgroup2 mount (see the script). */
const CRUN_HYBRID_WRAPPER = fileURLToPath(new URL('../../../libexec/crun-hybrid', import.meta.url));

/** v1 controllers plus a cgroup2 hierarchy at /sys/fs/cgroup/unified. */
function hybridCgroups(): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === '/sys/fs/cgroup/unified' && l.includes(' - cgroup2 '));
  } catch {
    return false;
  }
}

/** runc logs `time=".." level=error msg="..."`; keep just the message. */
export function cleanRuntimeMessage(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const m = /msg="((?:[^"\\]|\\.)*)"/.exec(l);
      return m ? m[1]!.replace(/\\"/g, '"') : l;
    });
  return lines.join(': ');
}
