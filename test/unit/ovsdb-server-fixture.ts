import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
export const NB_SCHEMA = '/usr/share/ovn/ovn-nb.ovsschema';
export const SB_SCHEMA = '/usr/share/ovn/ovn-sb.ovsschema';

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', bin]).status === 0;
}

/** Why a real ovsdb-server cannot run here, or undefined when it can. */
export function ovsdbServerMissing(): string | undefined {
  for (const bin of ['ovsdb-server', 'ovsdb-tool']) {
    if (!onPath(bin)) return `${bin} is not installed (Debian package openvswitch-switch)`;
  }
  if (!existsSync(VSWITCH_SCHEMA)) return `${VSWITCH_SCHEMA} is missing (openvswitch-switch)`;
  if (!existsSync(NB_SCHEMA)) return `${NB_SCHEMA} is missing (Debian package ovn-central)`;
  return undefined;
}

async function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A throwaway ovsdb-server serving the Open_vSwitch and OVN_Northbound databases (and any
 * `extra` ones, such as OVN_Southbound from {@link SB_SCHEMA}) from files in a temp folder, on a
 * unix socket there; stop/start keep the files, so a restart keeps the data.
 */
export class OvsdbServerFixture {
  readonly dir = mkdtempSync(join(tmpdir(), 'arca-ovsdb-'));
  readonly socket = join(this.dir, 'db.sock');
  /** A second socket, opened from the Manager table, for tests that need its inactivity probe. */
  readonly managerSocket = join(this.dir, 'mgr.sock');
  private child?: ChildProcess;

  private readonly files: string[];

  constructor(extra: ReadonlyArray<readonly [file: string, schema: string]> = []) {
    const dbs = [['conf.db', VSWITCH_SCHEMA], ['nb.db', NB_SCHEMA], ...extra] as const;
    this.files = dbs.map(([name]) => join(this.dir, name));
    for (const [name, schema] of dbs) {
      const r = spawnSync('ovsdb-tool', ['create', join(this.dir, name), schema], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ovsdb-tool create ${name}: ${r.stderr}`);
    }
  }

  /** Starts the server and resolves once its socket accepts connections. */
  async start(): Promise<void> {
    const child = spawn(
      'ovsdb-server',
      [
        `--remote=punix:${this.socket}`,
        '--remote=db:Open_vSwitch,Open_vSwitch,manager_options',
        `--pidfile=${join(this.dir, 'pid')}`,
        `--unixctl=${join(this.dir, 'ctl')}`,
        '--no-chdir',
        `--log-file=${join(this.dir, 'log')}`,
        ...this.files,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`ovsdb-server exited with ${child.exitCode}`);
      if (await canConnect(this.socket)) return;
      await sleep(25);
    }
    throw new Error('ovsdb-server did not open its socket in 5 s');
  }

  /** Kills the server (by its pid) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, signal);
    await exited;
  }

  /** Stops the server and removes the temp folder. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
