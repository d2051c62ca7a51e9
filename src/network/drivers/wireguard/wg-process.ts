/**
 * wireguard-go processes: one per endpoint, in the endpoint's hidden namespace, detached from the
 * daemon so tunnels outlive a daemon restart and are adopted by the next one (pidfile + cmdline +
 * network namespace). Stopped only by the PID we recorded.
 */

export interface WgProcessSpec {
  /** Interface name (unique machine-wide). */
  ifname: string;
  /** `/run/netns/<hidden>`: wireguard-go runs there (`nsenter --net=`), so its TUN and UDP sockets are made there. */
  netnsPath: string;
  pidFile: string;
  logFile: string;
}

/** Why wireguard-go cannot run here (names the Debian package), or undefined when it can. */
export function wireguardGoMissing(): string | undefined {
  throw new Error('not implemented');
}

/** `wireguard-go --version` (first line), cached; undefined if missing. */
export function wireguardGoVersion(): string | undefined {
  throw new Error('not implemented');
}

/**
 * Starts wireguard-go (WG_PROCESS_FOREGROUND=1, detached, output to logFile, pidfile written) and
 * resolves with its PID once its UAPI socket answers. Rejects (after killing what it started)
 * with the log's tail if it exits or does not answer within `timeoutMs`.
 */
export async function spawnWireguardGo(spec: WgProcessSpec, timeoutMs = 5000): Promise<number> {
  void spec;
  void timeoutMs;
  throw new Error('not implemented');
}

/**
 * The PID of a running wireguard-go for `spec` started earlier (pidfile names a live process whose
 * cmdline is wireguard-go `ifname` and whose netns is `spec.netnsPath`'s), else undefined.
 */
export function adoptWireguardGo(spec: WgProcessSpec): number | undefined {
  void spec;
  throw new Error('not implemented');
}

/** Whether `pid` is still that wireguard-go (`ifname` in its cmdline; a zombie counts as dead). */
export function isWireguardGo(pid: number, ifname: string): boolean {
  void pid;
  void ifname;
  throw new Error('not implemented');
}

/**
 * Stops it: SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. Removes the pidfile
 * and a stale UAPI socket. A PID that is no longer that wireguard-go is left alone.
 */
export async function stopWireguardGo(spec: WgProcessSpec, pid: number | undefined, graceMs = 1000): Promise<void> {
  void spec;
  void pid;
  void graceMs;
  throw new Error('not implemented');
}

/**
 * Watches processes and calls `onExit(ifname)` once when one dies (children: their exit event;
 * adopted ones: polled every `pollMs`). The driver re-creates the tunnel from its state.
 */
export class WgWatcher {
  constructor(
    private readonly onExit: (ifname: string) => void,
    private readonly pollMs = 250,
  ) {}
  watch(ifname: string, pid: number): void {
    void ifname;
    void pid;
    void this.onExit;
    void this.pollMs;
    throw new Error('not implemented');
  }
  unwatch(ifname: string): void {
    void ifname;
    throw new Error('not implemented');
  }
  close(): void {}
}

/** `fs.inotify.max_user_instances` now, and how many inotify instances this uid holds (each wireguard-go holds one). */
export function inotifyUsage(): { max: number; used: number } {
  throw new Error('not implemented');
}

/** Raises `fs.inotify.max_user_instances` to at least `min` (logging it); returns the value in force. */
export function ensureInotifyInstances(min: number): number {
  void min;
  throw new Error('not implemented');
}
