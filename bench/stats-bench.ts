/**
 * `npm run bench -- --only stats`: `docker stats --no-stream` of 10 running containers through the
 * CLI, and the same answers straight from the API (10 `stream=false` requests at once, and
 * `one-shot`), so the daemon's share shows apart from the CLI's own wait.
 *
 * The docker CLI (28.x) prints `--no-stream` on its first 500 ms display tick after every
 * container answered: that tick is a floor no daemon can go under; `cli_tick_floor_ms` measures
 * it with a stopped container, whose answer is immediate.
 */
import { request } from 'node:http';
import { TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';
import { summary, timed } from './sample-stats.js';

const CONTAINERS = 10;
const TARGET_MS = 300;

function get(socket: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    request({ socketPath: socket, path }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`))));
    })
      .on('error', reject)
      .end();
  });
}

export async function benchStats(d: TestDaemon, n: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  progress(`stats: starting ${CONTAINERS} containers`);
  const ids: string[] = [];
  try {
    for (let i = 0; i < CONTAINERS; i++) ids.push(await d.dockerOk(['run', '-d', TEST_IMAGE, 'sleep', '1000']));
    const stopped = await d.dockerOk(['create', TEST_IMAGE, 'true']);
    ids.push(stopped);
    const running = ids.slice(0, CONTAINERS);
    await d.dockerOk(['stats', '--no-stream', ...running]);

    progress(`stats: docker stats --no-stream × ${n}`);
    const cli: number[] = [];
    for (let i = 0; i < n; i++) cli.push(await timed(() => d.dockerOk(['stats', '--no-stream', ...running])));
    const tick: number[] = [];
    for (let i = 0; i < Math.min(n, 5); i++) tick.push(await timed(() => d.dockerOk(['stats', '--no-stream', stopped])));

    progress(`stats: ${CONTAINERS} API requests at once × ${n}`);
    const api: number[] = [];
    const oneShot: number[] = [];
    for (let i = 0; i < n; i++) {
      api.push(await timed(() => Promise.all(running.map((id) => get(d.socket, `/v1.51/containers/${id}/stats?stream=0`)))));
      oneShot.push(await timed(() => Promise.all(running.map((id) => get(d.socket, `/v1.51/containers/${id}/stats?stream=0&one-shot=1`)))));
    }
    const cliSummary = summary(cli);
    return {
      containers: CONTAINERS,
      cli_no_stream_ms: cliSummary,
      cli_tick_floor_ms: summary(tick),
      api_stream_false_ms: summary(api),
      api_one_shot_ms: summary(oneShot),
      target_ms: TARGET_MS,
      within_target: cliSummary.median <= TARGET_MS,
    };
  } finally {
    if (ids.length) await d.docker(['rm', '-f', ...ids]);
  }
}
