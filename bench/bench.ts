/**
 * `npm run bench`: latency of the container life cycle through the stock docker CLI, and the
 * memory the daemon and its shims cost. Prints one JSON object on stdout; progress goes to stderr.
 *
 * The daemon runs in a throwaway netns through the e2e harness, so the machine is left as found.
 * Times include the docker CLI's own start-up; `cli_floor_ms` (`docker version`) shows that floor.
 * Options: --n N (samples per measurement, default 20); --only net|containers|stats|build|cp|all (default all):
 * `net` is the network section (bench/net-bench.ts: raw-kernel baseline vs arca, issue 3); `stats`
 * is `docker stats --no-stream` of 10 containers (bench/stats-bench.ts); `build` a cached rebuild of
 * a 5-step Dockerfile (bench/build-bench.ts); `cp` is `docker cp` of 100 MiB each way against tar
 * through nsenter (bench/cp-bench.ts); `ovn` is the ovn driver against a bare OVN switch built with
 * the CLI tools, on a scratch daemon of its own (bench/ovn-bench.ts, issue 9), with `--scale N`
 * containers on one ovn network (default 200; 0 or 1 skips the scale run); `policy` is network
 * policies (bench/policy-bench.ts, issue 10): applying one that selects `--selected N` containers
 * (default 100) until enforced, 50 policies in force against none, a 1000-endpoint reload;
 * `wireguard` is the wireguard driver against bare wireguard-go between two netns, on a scratch
 * daemon of its own (bench/wireguard-bench.ts, issue 11): data path (`--n` ping rounds), joining a
 * network of 10 peers, wireguard-go's idle RSS per endpoint, and `--scale N` containers on one
 * wireguard network (default 100 there; 0 or 1 skips the scale run); `egress` is egress allowlists
 * (bench/egress-bench.ts, issue 12): iperf3 to an outside server unfiltered against conntrack,
 * sampled and full in interleaved rounds (`--n` rounds of `--seconds` s), and the time a DNS answer
 * waits for its addresses to be in the kernel set, on a scratch daemon with an outside netns;
 * `filterednat` is `arca vm-net serve` on one core against a synthetic QEMU (bench/vm-net-bench.ts,
 * issue 12), `--seconds` per phase, `--busy-poll MS` passed to it (vm-net serve's default if not given),
 * `--fast-path both|on|off`: both forwarding paths one after the other in the same run (the default), or one.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { conmonPids, rssKb, startDaemon, type TestDaemon } from '../test/e2e/harness.js';
import { ARCA_VERSION } from '../src/version.js';
import { benchNetwork } from './net-bench.js';
import { benchStats } from './stats-bench.js';
import { benchBuild } from './build-bench.js';
import { benchCp } from './cp-bench.js';
import { benchOvn } from './ovn-bench.js';
import { benchPolicy } from './policy-bench.js';
import { benchWireguard } from './wireguard-bench.js';
import { benchFilteredNat } from './vm-net-bench.js';
import { benchEgress } from './egress-bench.js';
import { stats, timed, type Stats } from './sample-stats.js';
import { runDetached } from './run-detached.js';

/** What we aim for on a 2-vCPU machine; reported next to the results, never enforced. */
const TARGETS = { run_d_ms: 90, rm_f_ms: 60, daemon_rss_mb: 60, per_container_mb: 3 };
const RUNNING_FOR_RSS = 10;

function progress(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;

function daemonAndShimsKb(d: TestDaemon): { daemon: number; conmon: number; shims: number } {
  const pids = new Set([...conmonPids(d.execRoot), ...conmonPids(d.root)]);
  let conmon = 0;
  for (const pid of pids) conmon += rssKb(pid);
  return { daemon: rssKb(d.pid()), conmon, shims: pids.size };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '20' },
      runtime: { type: 'string', default: 'runc' },
      only: { type: 'string', default: 'all' },
      scale: { type: 'string' },
      selected: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '5' },
      'busy-poll': { type: 'string' },
      'fast-path': { type: 'string', default: 'both' },
    },
    strict: true,
  });
  const N = Number(values.n);
  const only = values.only!;
  if (!['net', 'containers', 'stats', 'build', 'cp', 'ovn', 'policy', 'wireguard', 'egress', 'filterednat', 'all'].includes(only)) {
    throw new Error('--only must be net, containers, stats, build, cp, ovn, policy, wireguard, egress, filterednat or all');
  }
  const doContainers = only === 'containers' || only === 'all';
  const doNet = only === 'net' || only === 'all';
  const doStats = only === 'stats' || only === 'all';
  const doBuild = only === 'build' || only === 'all';
  const doCp = only === 'cp' || only === 'all';
  const doOvn = only === 'ovn' || only === 'all';
  const doPolicy = only === 'policy' || only === 'all';
  const doWireguard = only === 'wireguard' || only === 'all';
  const doEgress = only === 'egress' || only === 'all';
  const doFilteredNat = only === 'filterednat' || only === 'all';
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) throw new Error('--seconds must be a number above 0');
  // Each scale run has its own default size; an explicit --scale sets both.
  const scaleArg = values.scale === undefined ? undefined : Number(values.scale);
  if (scaleArg !== undefined && (!Number.isInteger(scaleArg) || scaleArg < 0)) throw new Error('--scale must be an integer ≥ 0');
  const scale = scaleArg ?? 200;
  const wgScale = scaleArg ?? 100;
  const selected = Number(values.selected);
  if (!Number.isInteger(selected) || selected < 1) throw new Error('--selected must be an integer ≥ 1');
  const minN = doContainers ? RUNNING_FOR_RSS : 1;
  if (!Number.isInteger(N) || N < minN) throw new Error(`--n must be an integer ≥ ${minN}`);

  const report: Record<string, unknown> = {
    arca_version: ARCA_VERSION,
    runtime: values.runtime,
    node: process.version,
    kernel: os.release(),
    cpus: os.cpus().length,
    n: N,
    only,
    loadavg_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const results: Record<string, unknown> = {};
  if (doContainers) {
    report.results = results;
    report.targets = TARGETS;
  }

  let d: TestDaemon | undefined;
  let code = 0;
  try {
    // The ovn and wireguard sections start daemons of their own (the first ovn network must be the
    // daemon's first; wireguard-go's RSS and processes are counted per daemon).
    if (!['ovn', 'wireguard', 'egress', 'filterednat'].includes(only)) {
      progress('starting a daemon in a throwaway netns and loading the test image');
      d = await startDaemon({ daemonArgs: ['--runtime', values.runtime!] });
      await new Promise((r) => setTimeout(r, 500));
    }
    if (d && doContainers) await benchContainers(d, N, results, report);
    if (d && doNet) {
      progress('network: raw-kernel baseline, then the same workload through arca');
      const network = await benchNetwork(d, N, progress);
      report.network = network;
      if (network.errors) code = 1;
    }
    if (d && doStats) report.stats = await benchStats(d, N, progress);
    if (d && doBuild) report.build = await benchBuild(d, N, progress);
    if (d && doCp) report.cp = await benchCp(d, N, progress);
    if (d && doPolicy) {
      progress('policy: applying, 50 in force against none, a 1000-endpoint reload');
      const policy = await benchPolicy(d, N, selected, progress);
      report.policy = policy;
      if (policy.errors) code = 1;
    }
    if (doOvn) {
      progress('ovn: a bare OVN switch built by hand, then the same workload through the ovn driver');
      const ovn = await benchOvn(N, scale, progress, ['--runtime', values.runtime!]);
      report.ovn = ovn;
      if (ovn.errors) code = 1;
    }
    if (doWireguard) {
      progress('wireguard: bare wireguard-go between two netns, then the same workload through the wireguard driver');
      const wireguard = await benchWireguard(N, wgScale, progress, ['--runtime', values.runtime!]);
      report.wireguard = wireguard;
      if (wireguard.errors) code = 1;
    }
    if (doEgress) {
      progress('egress: iperf3 to an outside server, unfiltered vs conntrack, sampled, full; DNS learning time');
      const egress = await benchEgress(N, seconds, progress, ['--runtime', values.runtime!]);
      report.egress = egress;
      if (egress.errors) code = 1;
    }
    if (doFilteredNat) {
      progress('filterednat: arca vm-net serve on one core against a synthetic QEMU');
      const fp = values['fast-path'];
      if (fp !== 'both' && fp !== 'on' && fp !== 'off') throw new Error('--fast-path must be on, off or both');
      report.filterednat = await benchFilteredNat(seconds, progress, values['busy-poll'], fp === 'both' ? ['ts', 'fast'] : fp === 'on' ? ['fast'] : ['ts']);
    }
  } catch (err) {
    code = 1;
    report.error = err instanceof Error ? err.message : String(err);
    progress(`failed: ${String(report.error)}`);
  } finally {
    if (d) {
      progress('cleaning up');
      await d.cleanup().catch((e: unknown) => progress(`cleanup: ${e instanceof Error ? e.message : String(e)}`));
    }
    report.loadavg_end = os.loadavg().map((x) => Math.round(x * 100) / 100);
  }
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  return code;
}

/** The container life cycle: run -d, exec, rm -f, and what the daemon and its shims cost in memory. */
async function benchContainers(d: TestDaemon, N: number, results: Record<string, unknown>, report: Record<string, unknown>): Promise<void> {
  {
    const idleKb = rssKb(d.pid());
    results.daemon_rss_idle_mb = mb(idleKb);
    progress(`idle daemon RSS ${mb(idleKb)} MB`);

    // The floor every CLI measurement stands on: docker's own start-up plus a ping and one request.
    const floorMs: number[] = [];
    for (let i = 0; i < N; i++) floorMs.push(await timed(async () => void (await d.dockerOk(['version', '-f', '{{.Server.Version}}']))));
    results.cli_floor_ms = stats(floorMs);

    // Warm-up: the first container pays for caches (image unpack, runtime lookups).
    const warm = await runDetached(d);
    await d.dockerOk(['rm', '-f', warm.id]);

    progress(`docker run -d × ${N}`);
    const ids: string[] = [];
    const runMs: number[] = [];
    for (let i = 0; i < N; i++) {
      const { id, ms } = await runDetached(d);
      ids.push(id);
      runMs.push(ms);
    }
    results.run_d_ms = stats(runMs);

    progress(`docker exec true × ${N}`);
    const execMs: number[] = [];
    for (let i = 0; i < N; i++) {
      const id = ids[i % ids.length]!;
      execMs.push(await timed(async () => void (await d.dockerOk(['exec', id, 'true']))));
    }
    results.exec_ms = stats(execMs);

    progress(`docker rm -f × ${N} (memory measured with ${RUNNING_FOR_RSS} still running)`);
    const rmMs: number[] = [];
    const rm = async (id: string): Promise<void> => {
      rmMs.push(await timed(async () => void (await d.dockerOk(['rm', '-f', id]))));
    };
    while (ids.length > RUNNING_FOR_RSS) await rm(ids.shift()!);
    await new Promise((r) => setTimeout(r, 500));
    const busy = daemonAndShimsKb(d);
    results.daemon_rss_mb = mb(busy.daemon);
    results.conmon_rss_mb_total = mb(busy.conmon);
    results.conmon_processes = busy.shims;
    results.per_container_mb = mb((busy.daemon + busy.conmon - idleKb) / RUNNING_FOR_RSS);
    while (ids.length) await rm(ids.shift()!);
    results.rm_f_ms = stats(rmMs);

    await benchSeccomp(d, N, results);

    const s = (k: string): Stats => results[k] as Stats;
    report.within_targets = {
      run_d_ms: s('run_d_ms').median <= TARGETS.run_d_ms,
      rm_f_ms: s('rm_f_ms').median <= TARGETS.rm_f_ms,
      daemon_rss_mb: (results.daemon_rss_mb as number) <= TARGETS.daemon_rss_mb,
      per_container_mb: (results.per_container_mb as number) <= TARGETS.per_container_mb,
    };
  }
}

/**
 * `docker run -d` with the default seccomp filter against `seccomp=unconfined`, in alternating
 * rounds so both see the same machine load: the filter must not make starts slower.
 */
async function benchSeccomp(d: TestDaemon, N: number, results: Record<string, unknown>): Promise<void> {
  progress(`docker run -d, default seccomp vs seccomp=unconfined, × ${N} each`);
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < N; i++) {
    for (const [opts, into] of [[[], on], [['--security-opt', 'seccomp=unconfined'], off]] as const) {
      const { id, ms } = await runDetached(d, [...opts]);
      into.push(ms);
      await d.dockerOk(['rm', '-f', id]);
    }
  }
  const a = stats(on);
  const b = stats(off);
  results.run_d_seccomp_ms = a;
  results.run_d_unconfined_ms = b;
  results.run_d_seccomp_ratio = Math.round((a.median / b.median) * 100) / 100;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
