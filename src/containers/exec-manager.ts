import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Daemon } from '../daemon.js';
import { Conflict, InvalidParameter, NotFound, SystemError, errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { which } from '../sys/runner.js';
import { capabilitySet, processSpec, securityOptions } from '../runtime/oci-spec.js';
import { cleanRuntimeMessage } from '../runtime/conmon-runtime.js';
import { mergeEnv, resolveUser } from './etc-files.js';
import { newId } from './names.js';
import { LogFollower, frame } from './log-file.js';
import { StdinRelay } from './stdin-relay.js';
import { parseDetachKeys, relayInput } from './detach-keys.js';
import { writeCtl } from './container-manager.js';

const log = logger('arca:exec');

/** The line runc logs when it cannot start an exec'd process. */
const RUNC_START_ERROR = /^time="[^"]*" level=(error|fatal) msg=".*(exec failed|unable to start container process)/;

export interface ExecConfig {
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  Cmd: string[];
  Env: string[];
  User: string;
  WorkingDir: string;
  Privileged: boolean;
  DetachKeys: string;
  ConsoleSize?: [number, number] | null;
}

interface ExecRecord {
  ID: string;
  ContainerID: string;
  Config: ExecConfig;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  started: boolean;
  dir: string;
  done: Promise<void>;
  markDone: () => void;
}

/**
 * Exec sessions live in memory, as Docker's do. Without a TTY the session is a foreground
 * `runc exec` whose pipes stream straight to the client; with one it runs under conmon, which
 * owns the pty (resizable through its ctl fifo).
 */
export class ExecManager {
  private readonly execs = new Map<string, ExecRecord>();
  private readonly dir: string;

  constructor(private readonly d: Daemon) {
    this.dir = join(d.config.execRoot, 'execs');
    mkdirSync(this.dir, { recursive: true });
  }

  /** A container's ExecIDs: sessions not finished yet (Docker drops them from the container at exit). */
  idsFor(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.ContainerID === containerId && e.ExitCode === null).map((e) => e.ID);
  }

  get(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw new NotFound(`No such exec instance: ${id}`);
    return e;
  }

  create(containerRef: string, body: Record<string, unknown>): { Id: string } {
    const c = this.d.containers.get(containerRef);
    if (c.State.Status === 'paused') throw new Conflict(`container ${c.Id} is paused, unpause the container before exec`);
    if (c.State.Status !== 'running') throw new Conflict(`container ${c.Id} is not running`);
    const cmd = body['Cmd'];
    if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((x) => typeof x !== 'string')) {
      throw new InvalidParameter('No exec command specified');
    }
    const env = body['Env'];
    if (env !== undefined && env !== null && (!Array.isArray(env) || env.some((x) => typeof x !== 'string'))) {
      throw new InvalidParameter('invalid Env: must be an array of strings');
    }
    const detachKeys = typeof body['DetachKeys'] === 'string' ? body['DetachKeys'] : '';
    if (!parseDetachKeys(detachKeys)) throw new SystemError(`Invalid escape keys (${detachKeys}) provided`);
    const wd = typeof body['WorkingDir'] === 'string' ? body['WorkingDir'] : '';
    if (wd && !wd.startsWith('/')) throw new InvalidParameter(`the working directory '${wd}' is invalid, it needs to be an absolute path`);
    const id = newId();
    let markDone = (): void => {};
    const done = new Promise<void>((r) => (markDone = r));
    const rec: ExecRecord = {
      ID: id,
      ContainerID: c.Id,
      Config: {
        AttachStdin: body['AttachStdin'] === true,
        AttachStdout: body['AttachStdout'] === true,
        AttachStderr: body['AttachStderr'] === true,
        Tty: body['Tty'] === true,
        Cmd: cmd as string[],
        Env: (env as string[] | undefined) ?? [],
        User: typeof body['User'] === 'string' ? body['User'] : '',
        WorkingDir: wd,
        Privileged: body['Privileged'] === true,
        DetachKeys: detachKeys,
        ConsoleSize: (body['ConsoleSize'] as [number, number] | null | undefined) ?? null,
      },
      Running: false,
      ExitCode: null,
      Pid: 0,
      started: false,
      dir: join(this.dir, id),
      done,
      markDone,
    };
    this.execs.set(id, rec);
    this.d.events.container(`exec_create: ${rec.Config.Cmd.join(' ')}`, c, { execID: id });
    return { Id: id };
  }

  inspect(id: string): Record<string, unknown> {
    const e = this.get(id);
    return {
      ID: e.ID,
      Running: e.Running,
      ExitCode: e.ExitCode,
      ProcessConfig: {
        tty: e.Config.Tty,
        entrypoint: e.Config.Cmd[0],
        arguments: e.Config.Cmd.slice(1),
        privileged: e.Config.Privileged,
        ...(e.Config.User ? { user: e.Config.User } : {}),
      },
      OpenStdin: e.Config.AttachStdin,
      OpenStderr: e.Config.AttachStderr,
      OpenStdout: e.Config.AttachStdout,
      CanRemove: false,
      ContainerID: e.ContainerID,
      DetachKeys: e.Config.DetachKeys,
      Pid: e.Pid,
    };
  }

  resize(id: string, h: number, w: number): void {
    const e = this.get(id);
    if (!e.Config.Tty) return;
    if (!e.Running) throw new Conflict(`exec ${id} is not running`);
    writeCtl(join(e.dir, 'ctl'), h, w);
  }

  /** Writes the process spec; throws 4xx for a bad user before anything runs. */
  private prepare(e: ExecRecord, tty: boolean): string {
    const c = this.d.containers.get(e.ContainerID);
    if (c.State.Status !== 'running') throw new Conflict(`container ${c.Id} is not running`);
    const rootfs = join(this.d.containers.dir(c.Id), 'rootfs');
    const user = resolveUser(rootfs, e.Config.User || c.Config.User);
    // An exec sees the container's link variables too (moby builds both from the same environment).
    let env = mergeEnv(this.d.containers.attacher.linkEnv?.(c) ?? [], c.Config.Env, e.Config.Env);
    if (!env.some((x) => x.startsWith('HOSTNAME='))) env.unshift(`HOSTNAME=${c.Config.Hostname}`);
    if (!env.some((x) => x.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    if (tty && !env.some((x) => x.startsWith('TERM='))) env.push('TERM=xterm');
    env = mergeEnv(env);
    const caps = capabilitySet(c.HostConfig.CapAdd, c.HostConfig.CapDrop, c.HostConfig.Privileged || e.Config.Privileged);
    const size = e.Config.ConsoleSize;
    const spec = processSpec(
      e.Config.Cmd,
      env,
      e.Config.WorkingDir || c.Config.WorkingDir || '/',
      user,
      tty,
      caps,
      size && size[0] && size[1] ? { height: size[0], width: size[1] } : undefined,
      // An exec'd process keeps the container's no-new-privileges (Docker); runc applies its seccomp filter.
      securityOptions(c.HostConfig).noNewPrivileges,
    );
    mkdirSync(e.dir, { recursive: true });
    const path = join(e.dir, 'process.json');
    writeFileSync(path, JSON.stringify(spec));
    return path;
  }

  /**
   * Starts the session. With a socket, streams over it (hijacked) and ends it when the process
   * exits; without one (Detach), runs in the background.
   */
  async start(id: string, socket: Duplex | undefined, input: Buffer, opts: { tty?: boolean; contentType?: (tty: boolean) => string; upgrade?: (ct: string) => void }): Promise<void> {
    const e = this.get(id);
    if (e.started) throw new Conflict(`Exec command ${id} has already run`);
    const tty = opts.tty ?? e.Config.Tty;
    let processPath: string;
    try {
      processPath = this.prepare(e, tty);
    } catch (err) {
      // moby resolves the user once the stream is hijacked: the client reads why on its stdout
      // and the exec ends with 126. A container that is not running is refused before that.
      if (err instanceof Conflict) throw err;
      // Like moby, a start that failed ends the exec with 126 (and out of the container's ExecIDs).
      e.started = true;
      e.ExitCode = 126;
      e.markDone();
      if (!socket) throw err;
      opts.upgrade?.(opts.contentType ? opts.contentType(tty) : '');
      const msg = Buffer.from(`${errorMessage(err)}\r\n`);
      socket.write(tty ? msg : frame(1, msg));
      socket.end();
      return;
    }
    e.started = true;
    e.Running = true;
    const c = this.d.containers.find(e.ContainerID);
    if (c) {
      this.d.events.container(`exec_start: ${e.Config.Cmd.join(' ')}`, c, { execID: e.ID });
      void e.done.then(() => this.d.events.container('exec_die', c, { execID: e.ID, exitCode: String(e.ExitCode ?? 0) }));
    }
    opts.upgrade?.(opts.contentType ? opts.contentType(tty) : '');
    try {
      if (tty) await this.startTty(e, processPath, socket, input);
      else this.startPiped(e, processPath, socket, input);
    } catch (err) {
      e.Running = false;
      e.ExitCode = 126;
      e.markDone();
      const msg = `OCI runtime exec failed: ${errorMessage(err).replace(/(: unknown)?$/, ': unknown')}\r\n`;
      if (socket) {
        socket.write(tty ? Buffer.from(msg) : frame(2, Buffer.from(msg)));
        socket.end();
      }
    }
  }

  private startPiped(e: ExecRecord, processPath: string, socket: Duplex | undefined, input: Buffer): void {
    const argv = this.d.containers.runtime.execArgv(e.ContainerID, processPath);
    const child = spawn(which(argv[0]!) ?? argv[0]!, argv.slice(1), {
      stdio: [e.Config.AttachStdin && socket ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    e.Pid = child.pid ?? 0;
    let errTail = '';
    // runc reports a process it could not start on this stderr, in its log format. Such a line is
    // held back until the exit says whose it was: Docker shows its own message instead.
    let held: Buffer[] | undefined = [];
    child.stdout!.on('data', (b: Buffer) => {
      if (socket && e.Config.AttachStdout) socket.write(frame(1, b));
    });
    child.stderr!.on('data', (b: Buffer) => {
      errTail = (errTail + b.toString()).slice(-4096);
      if (held) {
        held.push(b);
        const text = Buffer.concat(held).toString();
        const firstLine = text.split('\n', 1)[0]!;
        const couldBeRunc = text.includes('\n') ? RUNC_START_ERROR.test(firstLine) : 'time="'.startsWith(text.slice(0, 6));
        if (couldBeRunc) return;
        b = Buffer.concat(held);
        held = undefined;
      }
      if (socket && e.Config.AttachStderr) socket.write(frame(2, b));
    });
    if (child.stdin && socket) {
      child.stdin.on('error', () => {});
      if (input.length) child.stdin.write(input);
      socket.on('data', (b: Buffer) => child.stdin!.write(b));
      socket.on('end', () => child.stdin!.end());
      socket.resume();
    } else if (socket) {
      socket.on('data', () => {});
      socket.resume();
    }
    socket?.on('close', () => {
      if (e.Running) child.kill('SIGKILL');
    });
    child.on('error', (err) => log.warn('exec spawn failed', { error: err.message }));
    child.on('close', (code, signal) => {
      let exit = code ?? (signal ? 128 + (osSignal(signal) ?? 9) : 255);
      // runc's own failure (the command could not be started) is 255 plus its message.
      if (exit === 255 && /exec failed|unable to start container process/.test(errTail)) {
        // dockerd ends every exec its runtime could not start with 126, a missing command too
        // (a `run` of one is 127: there the CLI maps the create error's text).
        exit = 126;
        // Docker writes the start error on the stdout stream, then the CLI exits with the code.
        const msg = `OCI runtime exec failed: ${cleanRuntimeMessage(errTail)}: unknown\r\n`;
        if (socket && e.Config.AttachStdout) socket.write(frame(1, Buffer.from(msg)));
      } else if (held?.length && socket && e.Config.AttachStderr) {
        socket.write(frame(2, Buffer.concat(held)));
      }
      held = undefined;
      e.ExitCode = exit;
      e.Running = false;
      e.markDone();
      rmSync(e.dir, { recursive: true, force: true });
      socket?.end();
    });
  }

  private async startTty(e: ExecRecord, processPath: string, socket: Duplex | undefined, input: Buffer): Promise<void> {
    const rt = this.d.containers.runtime;
    const logPath = join(e.dir, 'exec.log');
    writeFileSync(logPath, '');
    const follower = socket
      ? new LogFollower(logPath, 0, (entry) => {
          socket.write(entry.data);
        })
      : undefined;
    follower?.start();
    const { pid } = await rt.execWithConmon({
      execId: e.ID,
      containerId: e.ContainerID,
      bundle: this.d.containers.dir(e.ContainerID),
      processPath,
      logPath,
      dir: e.dir,
      stdin: e.Config.AttachStdin,
      tty: true,
    });
    e.Pid = pid;
    let relay: StdinRelay | undefined;
    if (socket && e.Config.AttachStdin) {
      relay = new StdinRelay(e.dir);
      relayInput(socket, input, parseDetachKeys(e.Config.DetachKeys), relay, () => {
        follower?.stop();
        socket.end();
      });
      socket.resume();
    } else if (socket) {
      socket.on('data', () => {});
      socket.resume();
    }
    this.watchExit(e);
    void e.done.then(async () => {
      await follower?.drain();
      follower?.stop();
      relay?.kill();
      socket?.end();
      rmSync(e.dir, { recursive: true, force: true });
      rmSync(join(rt.socketDir, e.ID), { force: true });
    });
  }

  /** Waits for conmon's exit file of a TTY session (inotify, with a slow poll as a safety net). */
  private watchExit(e: ExecRecord): void {
    const dir = join(e.dir, 'exits');
    const file = join(dir, e.ContainerID);
    let watcher: FSWatcher | undefined;
    const check = (): void => {
      let text = '';
      try {
        text = readFileSync(file, 'utf8').trim();
      } catch {
        return;
      }
      if (!text || !e.Running) return;
      watcher?.close();
      clearInterval(timer);
      e.ExitCode = Number(text);
      e.Running = false;
      e.markDone();
    };
    try {
      watcher = watch(dir, () => check());
      watcher.on('error', () => {});
    } catch {
      /* the poll covers it */
    }
    const timer = setInterval(check, 250);
    timer.unref();
    check();
  }

  /** Forgets the sessions of a removed container. */
  forget(containerId: string): void {
    for (const [id, e] of this.execs) if (e.ContainerID === containerId && !e.Running) this.execs.delete(id);
  }
}

function osSignal(name: NodeJS.Signals): number | undefined {
  const map: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 };
  return map[name];
}
