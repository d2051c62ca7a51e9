/**
 * Debian's docker-registry (distribution v2) on loopback inside a test daemon's "host" netns:
 * the registry that pull, push and build tests talk to, with no packet leaving the machine.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestDaemon } from './harness.js';

export const REGISTRY = '/usr/bin/docker-registry';

/** For `describe(name, { skip })`: false when docker-registry is installed, else why not. */
export const skipWithoutRegistry: false | string = existsSync(REGISTRY) ? false : 'docker-registry is not installed (apt-get install docker-registry)';

/** A running registry; `stop()` may be called more than once. */
export interface LocalRegistry {
  port: number;
  /** `127.0.0.1:<port>`, the start of the references it serves. */
  host: string;
  stop(): void;
}

/** argv that runs `argv` in the daemon's network namespace, where the registry listens. */
export function inDaemonNetns(d: TestDaemon, argv: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${d.hostNs}`, '--', ...argv];
}

/**
 * Starts a registry that keeps its blobs under `dir` (created), on a random loopback port of the
 * daemon's netns, and waits until `/v2/` answers (10 s at most; then it is stopped and this throws).
 */
export async function startRegistry(d: TestDaemon, dir: string): Promise<LocalRegistry> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'registry.yml');
  writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const [cmd, ...args] = inDaemonNetns(d, [REGISTRY, 'serve', config]);
  const child = spawn(cmd!, args, { stdio: 'ignore' });
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const [curl, ...curlArgs] = inDaemonNetns(d, ['curl', '-sf', '-o', '/dev/null', `http://127.0.0.1:${port}/v2/`]);
  const deadline = Date.now() + 10_000;
  while (spawnSync(curl!, curlArgs).status !== 0) {
    if (Date.now() > deadline) {
      stop();
      throw new Error('docker-registry did not come up');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, host: `127.0.0.1:${port}`, stop };
}
