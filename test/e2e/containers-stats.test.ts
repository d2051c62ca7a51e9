/**
 * `docker stats`: real figures from the container's cgroup and network namespace, in Docker's
 * JSON, through the docker CLI, raw HTTP (stream, stream=false, one-shot) and docker-py.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';
import { cgroupValue, rawRequest } from './containers-support.js';

interface Frame {
  read: string;
  preread: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: Record<string, unknown>;
  cpu_stats: { cpu_usage: { total_usage: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number };
  memory_stats: { usage?: number; limit?: number; stats?: Record<string, number> };
  name: string;
  id: string;
  networks?: Record<string, { rx_bytes: number; tx_bytes: number; rx_packets: number; tx_packets: number }>;
}

/** Reads the first `n` JSON lines of a streamed answer, then hangs up. */
function firstFrames(socket: string, path: string, n: number): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path }, (res) => {
      let buf = '';
      const frames: Frame[] = [];
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          frames.push(JSON.parse(buf.slice(0, i)) as Frame);
          buf = buf.slice(i + 1);
          if (frames.length === n) {
            req.destroy();
            return resolve(frames);
          }
        }
      });
      res.on('end', () => resolve(frames));
    });
    req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
    req.end();
  });
}

const percent = (s: string): number => Number(s.replace('%', ''));

describe('containers: stats', () => {
  let d: TestDaemon;
  let busyPid: number;

  before(async () => {
    d = await startDaemon();
    await d.dockerOk(['run', '-d', '--name', 'busy', '--memory', '64m', '--pids-limit', '50', TEST_IMAGE, 'sh', '-c', 'while :; do :; done']);
    await d.dockerOk(['run', '-d', '--name', 'idle', TEST_IMAGE, 'sleep', '600']);
    await d.dockerOk(['create', '--name', 'stopped', TEST_IMAGE, 'true']);
    busyPid = Number(await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'busy']));
  });

  after(async () => {
    await d?.cleanup();
  });

  it('docker stats --no-stream: a busy container shows CPU, memory under its --memory limit, pids', async () => {
    const out = await d.dockerOk(['stats', '--no-stream', '--format', '{{json .}}', 'busy', 'idle']);
    const rows = out.split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const busy = rows.find((r) => r['Name'] === 'busy')!;
    const idle = rows.find((r) => r['Name'] === 'idle')!;
    assert.ok(percent(busy['CPUPerc']!) > 20, `busy CPU ${busy['CPUPerc']}`);
    assert.ok(percent(idle['CPUPerc']!) < 20, `idle CPU ${idle['CPUPerc']}`);
    const [usage, limit] = busy['MemUsage']!.split(' / ');
    assert.equal(limit, '64MiB');
    assert.match(usage!, /^[0-9.]+(B|KiB|MiB)$/);
    assert.notEqual(usage, '0B');
    assert.equal(busy['PIDs'], '1');
  });

  it('stream=false: Docker JSON with precpu from a first sample, figures from the cgroup', async () => {
    const r = await rawRequest(d.socket, 'GET', '/v1.51/containers/busy/stats?stream=0');
    assert.equal(r.status, 200);
    const f = JSON.parse(r.body) as Frame;
    assert.deepEqual(Object.keys(f), ['read', 'preread', 'pids_stats', 'blkio_stats', 'num_procs', 'storage_stats', 'cpu_stats', 'precpu_stats', 'memory_stats', 'name', 'id', 'networks']);
    assert.equal(f.name, '/busy');
    assert.ok(Date.parse(f.read) > Date.parse(f.preread));
    assert.ok(f.cpu_stats.cpu_usage.total_usage > f.precpu_stats.cpu_usage.total_usage, 'the busy loop burns CPU between the samples');
    assert.ok(f.cpu_stats.system_cpu_usage! > f.precpu_stats.system_cpu_usage!);
    assert.ok((f.cpu_stats.online_cpus ?? 0) >= 1);
    assert.equal(f.memory_stats.limit, 64 * 1024 * 1024);
    assert.equal(f.memory_stats.limit, Number(cgroupValue(busyPid, 'memory', 'memory.limit_in_bytes', 'memory.max')));
    assert.ok((f.memory_stats.usage ?? 0) > 0);
    assert.deepEqual(f.pids_stats, { current: 1, limit: 50 });
    assert.ok(Array.isArray(f.blkio_stats['io_service_bytes_recursive']));
    // Read after the answer, the cgroup's own counter is at least what the answer said.
    const raw = cgroupValue(busyPid, 'cpuacct', 'cpuacct.usage', 'cpu.stat');
    const nowNs = raw.startsWith('usage_usec') ? Number(raw.split('\n')[0]!.split(' ')[1]) * 1000 : Number(raw);
    assert.ok(nowNs >= f.cpu_stats.cpu_usage.total_usage && nowNs - f.cpu_stats.cpu_usage.total_usage < 5e9, 'CPU usage is the cgroup counter');
    assert.ok(f.networks?.['eth0'], 'eth0 counters');
    assert.equal(f.networks['lo' as 'eth0'], undefined, 'loopback is left out');
  });

  it('memory.stat figures above 2^53 (v1 "unlimited") arrive with the exact digits of the cgroup file', async (t) => {
    const idlePid = Number(await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'idle']));
    const huge = cgroupValue(idlePid, 'memory', 'memory.stat', 'memory.stat')
      .split('\n')
      .map((l) => l.split(' '))
      .filter(([, v]) => v && /^\d+$/.test(v) && BigInt(v) > BigInt(Number.MAX_SAFE_INTEGER));
    if (!huge.length) return t.skip('no memory.stat figure above 2^53 on this machine (cgroup v2 has no hierarchical limits)');
    const r = await rawRequest(d.socket, 'GET', '/v1.41/containers/idle/stats?stream=0&one-shot=1');
    assert.equal(r.status, 200);
    for (const [k, v] of huge) assert.ok(r.body.includes(`"${k}":${v},`) || r.body.includes(`"${k}":${v}}`), `${k} ${v} in ${r.body.slice(0, 200)}`);
    assert.ok(huge.some(([k]) => k === 'hierarchical_memory_limit'));
  });

  it('traffic shows in the namespace counters and NET I/O', async () => {
    const gw = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Gateway}}', 'idle']);
    const before = (JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/idle/stats?stream=0&one-shot=1')).body) as Frame).networks!['eth0']!;
    await d.dockerOk(['exec', 'idle', 'ping', '-c', '20', '-i', '0.05', '-s', '1000', '-q', gw]);
    const after = (JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/idle/stats?stream=0&one-shot=1')).body) as Frame).networks!['eth0']!;
    assert.ok(after.tx_bytes - before.tx_bytes >= 20 * 1000, `tx grew ${after.tx_bytes - before.tx_bytes}`);
    assert.ok(after.rx_bytes - before.rx_bytes >= 20 * 1000, `rx grew ${after.rx_bytes - before.rx_bytes}`);
    assert.ok(after.tx_packets - before.tx_packets >= 20);
    const row = JSON.parse(await d.dockerOk(['stats', '--no-stream', '--format', '{{json .}}', 'idle'])) as Record<string, string>;
    const [rx] = row['NetIO']!.split(' / ');
    assert.match(rx!, /kB$/, `NET I/O ${row['NetIO']}`);
  });

  it('one-shot answers one sample with empty precpu; stream sends frames a second apart, each with the previous as precpu', async () => {
    const one = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/busy/stats?stream=0&one-shot=1')).body) as Frame;
    assert.equal(one.precpu_stats.cpu_usage.total_usage, 0);
    assert.equal(one.preread, '0001-01-01T00:00:00Z');
    const [a, b] = await firstFrames(d.socket, '/v1.51/containers/busy/stats', 2);
    assert.ok(a && b);
    assert.equal(a.precpu_stats.cpu_usage.total_usage, 0);
    assert.deepEqual(b.precpu_stats, a.cpu_stats);
    assert.equal(b.preread, a.read);
    const gap = Date.parse(b.read) - Date.parse(a.read);
    assert.ok(gap >= 900 && gap < 2000, `frames ${gap} ms apart`);
  });

  it('a stopped container gives zeros, as Docker', async () => {
    const r = await rawRequest(d.socket, 'GET', '/v1.51/containers/stopped/stats?stream=0');
    const f = JSON.parse(r.body) as Frame;
    assert.equal(f.read, '0001-01-01T00:00:00Z');
    assert.deepEqual(f.memory_stats, {});
    assert.deepEqual(f.pids_stats, {});
    assert.equal(f.cpu_stats.cpu_usage.total_usage, 0);
    assert.equal(f.networks, undefined);
    const row = JSON.parse(await d.dockerOk(['stats', '--no-stream', '--format', '{{json .}}', 'stopped'])) as Record<string, string>;
    assert.equal(row['CPUPerc'], '0.00%');
    assert.equal(row['MemUsage'], '0B / 0B');
  });

  it("bad input: Docker's answers", async () => {
    let r = await rawRequest(d.socket, 'GET', '/v1.51/containers/busy/stats?stream=1&one-shot=1');
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).message, 'cannot have stream=true and one-shot=true');
    r = await rawRequest(d.socket, 'GET', '/v1.51/containers/nope/stats?stream=0');
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body).message, 'No such container: nope');
  });

  it('docker-py reads stats', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
s = c.containers.get("busy").stats(stream=False)
print(s["memory_stats"]["limit"], s["pids_stats"]["current"], s["cpu_stats"]["cpu_usage"]["total_usage"] > s["precpu_stats"]["cpu_usage"]["total_usage"])
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${64 * 1024 * 1024} 1 True`);
  });
});
