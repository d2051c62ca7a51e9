/**
 * `npm run bench -- --only build`: a cached rebuild of a 5-step Dockerfile through the docker CLI
 * (target ≤ 1 s, issue 8), after one uncached build of the same context. Each rebuild must say
 * "Using cache" for every step that has one and give the same image id, or the run fails.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';
import { summary } from './sample-stats.js';

const TARGET_MS = 1000;
const TAG = 'arca-bench/build:cached';

export async function benchBuild(d: TestDaemon, n: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'arca-bench-build-'));
  try {
    writeFileSync(
      join(dir, 'Dockerfile'),
      [`FROM ${TEST_IMAGE}`, 'RUN echo one > /one', 'COPY app.txt /app/app.txt', 'RUN wc -c /app/app.txt > /app/size', 'ENV MODE=bench', ''].join('\n'),
    );
    writeFileSync(join(dir, 'app.txt'), 'x'.repeat(64 * 1024));
    progress('build: first (uncached) build');
    const t0 = performance.now();
    const first = await d.docker(['build', '--no-cache', '-t', TAG, dir], { timeoutMs: 180_000 });
    const firstMs = performance.now() - t0;
    if (first.code !== 0) throw new Error(`first build failed: ${first.stderr.trim()}`);
    const id = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TAG]);
    progress(`build: cached rebuild × ${n}`);
    const cached: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const r = await d.docker(['build', '-t', TAG, dir], { timeoutMs: 60_000 });
      cached.push(performance.now() - t);
      if (r.code !== 0) throw new Error(`cached rebuild failed: ${r.stderr.trim()}`);
      const hits = (r.stdout.match(/ ---> Using cache/g) ?? []).length;
      if (hits !== 4) throw new Error(`cached rebuild used the cache for ${hits} of 4 steps`);
    }
    const again = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TAG]);
    if (again !== id) throw new Error('the cached rebuild made another image');
    const s = summary(cached);
    return { first_build_ms: Math.round(firstMs), cached_rebuild_ms: s, target_ms: TARGET_MS, meets_target: s.median <= TARGET_MS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await d.docker(['rmi', TAG]).catch(() => undefined);
  }
}
