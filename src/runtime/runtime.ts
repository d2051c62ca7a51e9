import type { ResourceLimits } from './resources.js';

/**
 * The OCI runtime contract. One implementation drives runc (or crun) with conmon as the
 * per-container shim; the daemon never holds a container's stdio itself, so containers keep
 * running when it stops.
 */
export interface CreateSpec {
  id: string;
  /** Bundle folder holding config.json (rootfs is mounted by the caller). */
  bundle: string;
  /** k8s-file log path conmon writes stdout/stderr to. */
  logPath: string;
  /** Keep a stdin pipe (OpenStdin). */
  stdin: boolean;
  /** Keep stdin open after the first attached client leaves (`!StdinOnce`). */
  leaveStdinOpen: boolean;
  tty: boolean;
  /** conmon's `--log-size-max`: past it conmon starts the log afresh (what it had is dropped). */
  logSizeMax?: number;
}

export interface ExecSpec {
  /** Exec session id (conmon's cuuid). */
  execId: string;
  containerId: string;
  bundle: string;
  /** OCI process JSON for the exec. */
  processPath: string;
  logPath: string;
  /** Folder for the session's attach socket, ctl fifo and exit file. */
  dir: string;
  stdin: boolean;
  tty: boolean;
}

export interface Runtime {
  /** Name shown by `/info` (`runc`, `crun`). */
  readonly name: string;
  /**
   * Creates the container under a new conmon and returns the container's init pid once the
   * runtime said it is created. Throws the runtime's own error text on failure.
   */
  create(spec: CreateSpec): Promise<{ pid: number; conmonPid: number }>;
  /**
   * Adds what this runtime alone reads to a container's OCI spec before it is written (crun: its
   * seccomp filter compiled beforehand). Optional; the spec must mean the same with or without it.
   */
  prepareSpec?(spec: Record<string, unknown>): void;
  start(id: string): Promise<void>;
  /** Sends a signal to the init process (`all` for every process). */
  kill(id: string, signal: string, all?: boolean): Promise<void>;
  /** Removes the runtime's state; `force` kills first. Already gone is success. */
  delete(id: string, force?: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  /** Changes the cgroup limits of a running (or paused) container; absent fields stay as they are. */
  update(id: string, limits: ResourceLimits): Promise<void>;
  resume(id: string): Promise<void>;
  /** Runtime's view: `created`, `running`, `paused`, `stopped`, or undefined when unknown to it. */
  state(id: string): Promise<{ status: string; pid: number } | undefined>;
  /** PIDs of every process in the container. */
  pids(id: string): Promise<number[]>;
  /** Argv that runs a process inside the container in the foreground (`exec`), for pipes. */
  execArgv(id: string, processPath: string): string[];
  /** Starts an exec session with a TTY under conmon; resolves with its pid. */
  execWithConmon(spec: ExecSpec): Promise<{ pid: number; conmonPid: number }>;
  /** Folder where conmon writes `<id>` exit files for containers (exec sessions: `<dir>/exits/<containerId>`). */
  readonly exitDir: string;
  /** Folder of conmon's attach-socket symlinks, one per container or exec session id. */
  readonly socketDir: string;
}
