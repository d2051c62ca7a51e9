import { spawn, type ChildProcess } from 'node:child_process';
import { which } from '../sys/runner.js';
import { logger } from '../log.js';

const log = logger('arca:attach');

/**
 * Writes a client's stdin into conmon's attach socket. That socket is SOCK_SEQPACKET, which
 * Node cannot open, so a socat per attached client carries the bytes (output is read from the
 * log file instead). socat is started with the socket's folder as cwd and a relative path, which
 * keeps the address under the 108-byte sun_path limit for deep state folders.
 */
export class StdinRelay {
  private readonly child: ChildProcess;
  private closed = false;

  constructor(socketDir: string, socketName = 'attach') {
    const socat = which('socat');
    if (!socat) throw new Error('socat not found in PATH (apt-get install socat)');
    this.child = spawn(socat, ['-u', 'STDIN', `UNIX-CONNECT:${socketName},type=5`], {
      cwd: socketDir,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    this.child.stderr!.on('data', (b: Buffer) => log.debug('socat', { stderr: b.toString().trim() }));
    this.child.on('error', () => {});
    this.child.stdin!.on('error', () => {});
    this.child.on('exit', () => (this.closed = true));
  }

  write(b: Buffer): void {
    if (!this.closed) this.child.stdin!.write(b);
  }

  /** The client closed its stdin: conmon then closes the container's (StdinOnce). */
  end(): void {
    if (!this.closed) this.child.stdin!.end();
  }

  kill(): void {
    if (!this.closed) this.child.kill('SIGTERM');
  }
}
