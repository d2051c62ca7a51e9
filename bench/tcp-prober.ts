/**
 * A TCP prober for timing policy changes, run inside a container's network namespace with the
 * host's node (`nsenter --net=<SandboxKey> node tcp-prober.js HOST PORT`). Every
 * {@link INTERVAL_MS} it opens a fresh connection to HOST:PORT (a new flow each time, so each
 * one meets the policy, never a conntrack shortcut), without waiting for the previous ones. An
 * attempt reached the host if it connected or was refused (the port needs no server: the
 * kernel's RST proves the SYN got there and its reply came back, at no cost to the target); one
 * without an answer within {@link ATTEMPT_MS} did not. Results are taken in the order the
 * attempts started, and each change of state is printed as `<epoch ms> open|closed`, stamped
 * with the start of the first attempt in the new state; closed needs {@link CLOSED_AFTER}
 * unanswered attempts in a row (one lost SYN on a busy machine is not a policy). Exits when its
 * stdin closes.
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

const INTERVAL_MS = 2;
const ATTEMPT_MS = 30;
const CLOSED_AFTER = 2;

const now = (): number => performance.timeOrigin + performance.now();

function attempt(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ATTEMPT_MS);
    s.once('connect', () => done(true));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED'));
  });
}

function main(): void {
  const [host, portArg] = process.argv.slice(2);
  const port = Number(portArg);
  if (!host || !Number.isInteger(port)) throw new Error('usage: tcp-prober HOST PORT');
  const pending: Array<{ t: number; ok?: boolean }> = [];
  let state: 'open' | 'closed' | undefined;
  let failStart: number | undefined;
  let fails = 0;
  const drain = (): void => {
    while (pending.length && pending[0]!.ok !== undefined) {
      const { t, ok } = pending.shift()!;
      if (ok) {
        fails = 0;
        failStart = undefined;
        if (state !== 'open') process.stdout.write(`${t.toFixed(3)} open\n`);
        state = 'open';
      } else {
        failStart ??= t;
        if (++fails >= CLOSED_AFTER && state !== 'closed') {
          process.stdout.write(`${failStart.toFixed(3)} closed\n`);
          state = 'closed';
        }
      }
    }
  };
  const timer = setInterval(() => {
    const entry: { t: number; ok?: boolean } = { t: now() };
    pending.push(entry);
    void attempt(host, port).then((ok) => {
      entry.ok = ok;
      drain();
    });
  }, INTERVAL_MS);
  const stop = (): void => {
    clearInterval(timer);
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}

main();
