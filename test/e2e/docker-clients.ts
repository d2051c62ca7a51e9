/**
 * The Docker clients besides the docker CLI that end-to-end tests drive, Debian's python3-docker
 * (docker-py) and docker-compose 1.29: where they are, whether they are installed, and how a
 * test runs them against its daemon.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import type { TestDaemon } from './harness.js';

export const PYTHON = '/usr/bin/python3';
export const COMPOSE = '/usr/bin/docker-compose';

/** For `it(name, { skip })`: false when docker-py imports, else why the test cannot run. */
export const skipWithoutDockerPy: false | string =
  spawnSync(PYTHON, ['-c', 'import docker'], { encoding: 'utf8' }).status === 0 ? false : 'python3-docker is not installed';

/** For `it(name, { skip })`: false when docker-compose runs, else why the test cannot run. */
export const skipWithoutCompose: false | string = spawnSync(COMPOSE, ['version'], { encoding: 'utf8' }).status === 0 ? false : 'docker-compose is not installed';

/** How a client program ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end, asynchronously; it is killed after `timeoutMs`. */
export function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, stdout, stderr });
    });
  });
}

/**
 * Runs a docker-py script with the daemon's socket URL as `sys.argv[1]` and `args` after it, in
 * the daemon's client environment (so `docker.from_env()` also finds the test daemon, never another).
 */
export function dockerPy(d: TestDaemon, script: string, ...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(PYTHON, ['-c', script, `unix://${d.socket}`, ...args], { env: d.env, encoding: 'utf8', timeout: 60_000 });
}
