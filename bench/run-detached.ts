/**
 * `docker run -d` as the benchmarks time it: until the CLI returns and the container is running
 * (the bench sections share it so that every start is measured the same way).
 */
import { performance } from 'node:perf_hooks';
import { TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';

/** `docker run -d` returns once the container started; we also check that it is still running. */
export async function runDetached(d: TestDaemon, opts: string[] = [], cmd: string[] = ['sleep', '1000']): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  const id = await d.dockerOk(['run', '-d', ...opts, TEST_IMAGE, ...cmd]);
  let ms = performance.now() - t0;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const running = await d.dockerOk(['inspect', '-f', '{{.State.Running}}', id]);
    if (running === 'true') break;
    if (Date.now() > deadline) throw new Error(`container ${id.slice(0, 12)} is not running 10 s after docker run -d`);
    await new Promise((r) => setTimeout(r, 10));
    // Not running when the CLI returned: the wait counts.
    ms = performance.now() - t0;
  }
  return { id, ms };
}
