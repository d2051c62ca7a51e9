/**
 * A long-lived TCP conversation through net-probe.js `chat`, run inside a namespace: what a
 * kernel test needs to see a live connection survive, or be cut by, a ruleset change.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROBE = join(dirname(fileURLToPath(import.meta.url)), 'net-probe.js');

export interface ProbeSession {
  /** Sends a line; resolves with the echoed line, or `timeout` after 1.5 s. */
  say(line: string): Promise<string>;
  close(): void;
}

/** Connects from namespace `nsPath` to host:port; the child goes into `children` for the test's cleanup. */
export async function openSession(nsPath: string, host: string, port: number, children: ChildProcess[]): Promise<ProbeSession> {
  const child = spawn('nsenter', [`--net=${nsPath}`, process.execPath, PROBE, 'chat', host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  let waiting: ((l: string) => void) | undefined;
  let buf = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting;
      waiting = undefined;
      w?.(line);
    }
  });
  const next = (timeoutMs: number): Promise<string> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting = undefined;
        resolve('timeout');
      }, timeoutMs);
      waiting = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
  assert.equal(await next(3000), 'connected');
  return {
    say: (line) => {
      const answer = next(1500);
      child.stdin!.write(line + '\n');
      return answer;
    },
    close: () => child.kill('SIGKILL'),
  };
}
