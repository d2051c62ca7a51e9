/**
 * `npm run bench -- --only cp`: `docker cp` of a 100 MiB file into and out of a running container
 * through the stock CLI, against the same copy done by hand in the same run: host GNU tar piped
 * into `nsenter -t <pid> -m tar` (the container's own tar in its mount namespace), and back. The
 * two are timed in alternating rounds so load drifts hit both; the ratio is baseline / docker cp
 * (1 = as fast as by hand; the target is ≥ 0.8). `discard_floor_ms`: the same `docker cp` into a
 * Node HTTP stand-in that throws the body away (bench/cp-discard-server.ts), the best a daemon
 * built on Node's HTTP server could do before writing a byte, timed in the same rounds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';
import { startDiscardServer, type DiscardServer } from './cp-discard-server.js';
import { summary } from './sample-stats.js';

const SIZE_MIB = 100;
const TARGET_RATIO = 0.8;

function done(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${what}: exit ${code}`))));
  });
}

/**
 * Runs `a | b` as a shell pipeline, so the bytes go straight from one process to the other as
 * they would for someone typing it; the argv lists reach bash as positional parameters, never as
 * script text.
 */
async function piped(a: string[], b: string[]): Promise<number> {
  const script = `"\${@:1:${a.length}}" | "\${@:${a.length + 1}}"`;
  return run(['bash', '-c', `set -o pipefail; ${script}`, 'pipe', ...a, ...b]);
}

async function run(argv: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  await done(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], env }), argv.join(' '));
  return performance.now() - t0;
}

export async function benchCp(d: TestDaemon, n: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const rounds = Math.max(3, Math.min(n, 7));
  const dir = mkdtempSync(join(tmpdir(), 'arca-cp-bench-'));
  const src = join(dir, 'src');
  const out = join(dir, 'out');
  let id = '';
  let discard: DiscardServer | undefined;
  try {
    discard = await startDiscardServer(join(dir, 'discard.sock'));
    progress(`cp: making a ${SIZE_MIB} MiB file`);
    await run(['mkdir', '-p', src, out]);
    await run(['dd', 'if=/dev/urandom', `of=${join(src, 'big')}`, 'bs=1M', `count=${SIZE_MIB}`, 'status=none']);
    id = await d.dockerOk(['run', '-d', TEST_IMAGE, 'sleep', '100000']);
    const pid = await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', id]);
    const inNs = (argv: string[]): string[] => ['nsenter', '-t', pid, '-m', '--', ...argv];
    const clean = async (): Promise<void> => {
      await run(inNs(['rm', '-rf', '/tmp/big']));
      rmSync(join(out, 'big'), { force: true });
    };
    const t = { cpIn: [] as number[], tarIn: [] as number[], cpOut: [] as number[], tarOut: [] as number[], discardIn: [] as number[] };
    const discardEnv = { ...d.env, DOCKER_HOST: `unix://${discard.socket}` };
    progress(`cp: ${rounds} alternating rounds of docker cp and tar | nsenter tar, each way`);
    for (let i = 0; i < rounds; i++) {
      await clean();
      t.cpIn.push(await run(['docker', 'cp', join(src, 'big'), `${id}:/tmp/big`], d.env));
      t.cpOut.push(await run(['docker', 'cp', `${id}:/tmp/big`, join(out, 'big')], d.env));
      if (statSync(join(out, 'big')).size !== SIZE_MIB << 20) throw new Error('docker cp out gave a short file');
      await clean();
      t.discardIn.push(await run(['docker', 'cp', join(src, 'big'), `${id}:/tmp`], discardEnv));
      t.tarIn.push(await piped(['tar', '-C', src, '-c', '-f', '-', 'big'], inNs(['tar', '-x', '-f', '-', '-C', '/tmp'])));
      t.tarOut.push(await piped(inNs(['tar', '-c', '-f', '-', '-C', '/tmp', 'big']), ['tar', '-x', '-f', '-', '-C', out]));
      if (statSync(join(out, 'big')).size !== SIZE_MIB << 20) throw new Error('tar out gave a short file');
    }
    const cpIn = summary(t.cpIn);
    const tarIn = summary(t.tarIn);
    const cpOut = summary(t.cpOut);
    const tarOut = summary(t.tarOut);
    const ratioIn = Math.round((tarIn.median / cpIn.median) * 100) / 100;
    const ratioOut = Math.round((tarOut.median / cpOut.median) * 100) / 100;
    return {
      size_mib: SIZE_MIB,
      into_container: { docker_cp_ms: cpIn, tar_nsenter_ms: tarIn, ratio: ratioIn, discard_floor_ms: summary(t.discardIn) },
      out_of_container: { docker_cp_ms: cpOut, tar_nsenter_ms: tarOut, ratio: ratioOut },
      target_ratio: TARGET_RATIO,
      within_target: ratioIn >= TARGET_RATIO && ratioOut >= TARGET_RATIO,
    };
  } finally {
    if (id) await d.docker(['rm', '-f', id]);
    await discard?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
