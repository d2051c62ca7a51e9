// Loaded into each test file's process (`node --import`, by run-tests.mjs). Node 20's runner waits
// for a file's process to exit on its own once its tests are done; a handle left open (a server, a
// socket, a child process, a timer, a native addon's socket), typically by a failed test whose
// cleanup never ran, keeps it alive until the file's --test-timeout (10 minutes) cancels it, with
// nothing to say what was open. This names what is still open a few seconds after the file's tests
// ended and ends the process with status 1, so that the file fails then, saying why.
import { after } from 'node:test';

/** Longer than any file's own top-level `after` hooks take (they run after this one starts). */
const GRACE_MS = 5000;

/** What a handle is, with what tells it apart (an address, a pid, a timer's callback). */
function describe(h) {
  const kind = h?.constructor?.name ?? typeof h;
  try {
    if (typeof h.address === 'function' && kind === 'Server') return `${kind} listening on ${JSON.stringify(h.address())}`;
    if (kind === 'ChildProcess') return `${kind} pid ${h.pid} (${h.spawnargs?.join(' ').slice(0, 200)})`;
    if (kind === 'Socket' && typeof h.address === 'function') {
      const local = h.address();
      const remote = h.remoteAddress ? ` to ${h.remoteAddress}:${h.remotePort}` : h._pipeName ? ` to ${h._pipeName}` : '';
      return `${kind} ${JSON.stringify(local)}${remote}`;
    }
    if (kind === 'Timeout') return `${kind} of ${h._idleTimeout} ms${h._repeat ? ', repeating' : ''} (${h._onTimeout?.name || 'anonymous'})`;
  } catch {
    // A closing handle may not answer; its kind is enough.
  }
  return kind;
}

after(() => {
  // Unref'd: it fires only if the process is still alive by then.
  setTimeout(() => {
    const std = new Set([process.stdin, process.stdout, process.stderr]);
    const open = process._getActiveHandles().filter((h) => !std.has(h) && (typeof h.hasRef !== 'function' || h.hasRef()));
    process.stderr.write(
      `test-exit-guard: ${process.argv[1]}: still running ${GRACE_MS / 1000} s after its tests ended, held open by:\n` +
        (open.length ? open.map((h) => `  ${describe(h)}\n`).join('') : '  nothing JavaScript sees: a native handle (the addon\'s sockets, a FilteredNAT engine not closed)\n') +
        `(a test's cleanup did not run, or something it started was never closed)\n`,
    );
    // Everything the tests reported is out (stdout and stderr are pipes, written synchronously).
    process.exit(1);
  }, GRACE_MS).unref();
});
