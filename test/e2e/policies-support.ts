/**
 * What the network-policy end-to-end tests and the policy benchmark share: the `arca` CLI and the
 * `/arca/v1/policies` API against a test daemon, servers in the test image, probes run inside
 * containers, the {@link PolicyWorld} read back from `docker inspect`, and a readable diff of a
 * probed reachability matrix against the model's.
 *
 * The test image's busybox has no UDP server (its `nc` lacks `-u`; no socat, dnsd or tftpd), so a
 * UDP port is probed with `nslookup HOST ADDR:PORT`, a real datagram to a port nobody listens on:
 * if it arrives, the destination's kernel answers ICMP port unreachable, which comes back as
 * traffic related to the probe's flow and nslookup reports "Connection refused" at once; if a
 * policy drops it, nothing comes back and the probe times out. So a UDP cell proves the request
 * passed one way and its related ICMP the other, which is what the model promises.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allProbes, expectedMatrix } from '../../src/network/policies/policy-random.js';
import type { PolicyDoc, PolicyProto, PolicyWorld } from '../../src/network/policies/policy-types.js';
import { rawRequest, type RawResponse } from './containers-support.js';
import { exec, type Run } from './docker-clients.js';
import type { TestDaemon } from './harness.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The arca CLI as bin/arca runs it. */
export const ARCA_MAIN_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Runs `arca ARGS...` against the test daemon (its `DOCKER_HOST`); never throws on a non-zero exit. */
export function arca(d: TestDaemon, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return exec(process.execPath, [ARCA_MAIN_JS, ...args], d.env, opts.cwd, opts.timeoutMs ?? 60_000);
}

/** Runs `arca ARGS...`; throws with its output on a non-zero exit; returns stdout. */
export async function arcaOk(d: TestDaemon, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await arca(d, args, opts);
  if (r.code !== 0) throw new Error(`arca ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** One request on `/arca/v1/policies[/NAME]`. */
export function policyApi(d: TestDaemon, method: 'GET' | 'PUT' | 'DELETE', name?: string, body?: unknown): Promise<RawResponse> {
  const path = name === undefined ? '/arca/v1/policies' : `/arca/v1/policies/${encodeURIComponent(name)}`;
  return rawRequest(d.socket, method, path, body === undefined ? undefined : JSON.stringify(body));
}

/** A JSON request on the daemon's socket (a string body is sent verbatim), the answer parsed. */
export async function apiJson(d: TestDaemon, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await rawRequest(d.socket, method, path, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  return { status: r.status, body: r.body.trim() ? JSON.parse(r.body) : undefined };
}

/** Several policy documents as one YAML stream (each document in JSON, YAML's flow style). */
export function policyFile(docs: PolicyDoc[]): string {
  return docs.map((doc) => `---\n${JSON.stringify(doc)}\n`).join('');
}

// ---- servers and probes ---------------------------------------------------------------------------

/** TCP ports every test container serves; each connection is answered with `ok`. */
export const TCP_PORTS = [8080, 8081] as const;
/** The UDP port probed (nobody listens: see the file's comment). */
export const UDP_PORT = 5353;

/** One port of one protocol, as probed. */
export interface ProbePort {
  proto: PolicyProto;
  port: number;
}

export const PROBE_PORTS: ProbePort[] = [...TCP_PORTS.map((port) => ({ proto: 'tcp' as const, port })), { proto: 'udp', port: UDP_PORT }];

/** The command of a test container: persistent busybox `nc` servers on {@link TCP_PORTS}. */
export function serverCommand(): string[] {
  const servers = TCP_PORTS.map((p) => `nc -ll -p ${p} -e echo ok &`).join(' ');
  return ['sh', '-c', `${servers} exec sleep 100000`];
}

export interface ProbeTarget extends ProbePort {
  /** Bare IPv4 address. */
  addr: string;
}

const key = (t: ProbeTarget): string => `${t.addr} ${t.proto}/${t.port}`;

/**
 * A shell script for busybox `sh` that probes every target at once (one background job each,
 * each bounded by `timeout`) and prints `R <addr> <proto>/<port> <1|0>` per target.
 */
export function probeScript(targets: ProbeTarget[], timeoutS: number): string {
  const jobs = targets.map((t) => {
    const tag = `R ${key(t)}`;
    if (t.proto === 'tcp') {
      return `( o=$(timeout ${timeoutS} nc ${t.addr} ${t.port} </dev/null 2>&1); case "$o" in *ok*) echo "${tag} 1";; *) echo "${tag} 0";; esac ) &`;
    }
    if (t.proto === 'udp') {
      return `( o=$(timeout ${timeoutS} nslookup probe ${t.addr}:${t.port} 2>&1); case "$o" in *refused*) echo "${tag} 1";; *) echo "${tag} 0";; esac ) &`;
    }
    throw new Error(`cannot probe ${t.proto} with the test image`);
  });
  return [...jobs, 'wait'].join('\n');
}

/** Probes `targets` from inside container `from`; returns reached or not per `"<addr> <proto>/<port>"`. */
export async function probeFrom(d: TestDaemon, from: string, targets: ProbeTarget[], timeoutS = 2): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  if (!targets.length) return out;
  const r = await d.docker(['exec', from, 'sh', '-c', probeScript(targets, timeoutS)], { timeoutMs: (timeoutS + 20) * 1000 });
  if (r.code !== 0) throw new Error(`probes from ${from} failed (exit ${r.code}): ${r.stderr.trim()}`);
  for (const line of r.stdout.split('\n')) {
    const m = /^R (\S+) (\S+) ([01])$/.exec(line.trim());
    if (m) out.set(`${m[1]} ${m[2]}`, m[3] === '1');
  }
  for (const t of targets) if (!out.has(key(t))) throw new Error(`probe ${from} → ${key(t)} printed nothing: ${r.stdout}`);
  return out;
}

/** Waits until container `c` serves every TCP port on its loopback (policies never see loopback). */
export async function waitForServers(d: TestDaemon, c: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  const script = TCP_PORTS.map((p) => `nc 127.0.0.1 ${p} </dev/null | grep -q ok || exit 1`).join('\n');
  for (;;) {
    if ((await d.docker(['exec', c, 'sh', '-c', script])).code === 0) return;
    if (Date.now() > deadline) throw new Error(`container ${c} does not serve ${TCP_PORTS.join(', ')} after 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- the world, read back -------------------------------------------------------------------------

interface InspectedContainer {
  Id: string;
  Name: string;
  Config: { Labels: Record<string, string> | null };
  NetworkSettings: { Networks: Record<string, { NetworkID: string; EndpointID: string; IPAddress: string; GlobalIPv6Address: string }> };
}

/** The {@link PolicyWorld} of the given networks and running containers, as `docker inspect` shows them. */
export async function worldOf(d: TestDaemon, networks: string[], containers: string[]): Promise<PolicyWorld> {
  const nets = JSON.parse(await d.dockerOk(['network', 'inspect', ...networks])) as Array<{ Id: string; Name: string; Driver: string }>;
  const world: PolicyWorld = { networks: nets.map((n) => ({ id: n.Id, name: n.Name, driver: n.Driver })), endpoints: [] };
  if (!containers.length) return world;
  const cs = JSON.parse(await d.dockerOk(['inspect', ...containers])) as InspectedContainer[];
  for (const c of cs) {
    for (const [netName, ep] of Object.entries(c.NetworkSettings.Networks ?? {})) {
      if (!ep.EndpointID) continue;
      world.endpoints.push({
        endpointId: ep.EndpointID,
        containerId: c.Id,
        containerName: c.Name.replace(/^\//, ''),
        labels: c.Config.Labels ?? {},
        networkId: ep.NetworkID,
        networkName: netName,
        addresses: [ep.IPAddress, ep.GlobalIPv6Address].filter(Boolean),
      });
    }
  }
  return world;
}

// ---- matrices -------------------------------------------------------------------------------------

/** One probed cell: from a container to another's address on a network they share, on one port. */
export interface Cell extends ProbeTarget {
  from: string;
  to: string;
  network: string;
}

export const cellKey = (c: Cell): string => `${c.from} → ${c.to}@${c.network} ${c.proto}/${c.port}`;

/**
 * Every cell of a world: the model's {@link allProbes} (each ordered pair of distinct containers
 * on each network both are on, to the destination's address there, on each port), named.
 */
export function cellsOf(world: PolicyWorld, ports: ProbePort[] = PROBE_PORTS): Cell[] {
  return allProbes(world, ports).map((p) => {
    if (!('address' in p.to)) throw new Error('allProbes gives addresses');
    const addr = p.to.address;
    const dst = world.endpoints.find((e) => e.addresses.includes(addr))!;
    return { from: p.from, to: dst.containerName, network: dst.networkName, addr, proto: p.proto, port: p.port };
  });
}

/** The model's verdict (`arca policy check`'s) on every cell, with its reason. */
export function expectedOf(policies: PolicyDoc[], world: PolicyWorld, cells: Cell[]): Map<string, { allowed: boolean; reason: string }> {
  const verdicts = expectedMatrix(
    policies,
    world,
    cells.map((c) => ({ from: c.from, to: { address: c.addr }, proto: c.proto, port: c.port })),
  );
  return new Map(cells.map((c, i) => [cellKey(c), { allowed: verdicts[i]!.allowed, reason: verdicts[i]!.reason }]));
}

/** Probes every cell, each source container's probes in one `docker exec`, the sources side by side. */
export async function probeCells(d: TestDaemon, cells: Cell[], timeoutS = 2): Promise<Map<string, boolean>> {
  const bySource = new Map<string, Cell[]>();
  for (const c of cells) bySource.set(c.from, [...(bySource.get(c.from) ?? []), c]);
  const out = new Map<string, boolean>();
  await Promise.all(
    [...bySource].map(async ([from, list]) => {
      const res = await probeFrom(d, from, list, timeoutS);
      for (const c of list) out.set(cellKey(c), res.get(key(c))!);
    }),
  );
  return out;
}

/**
 * The matrices side by side, one grid per network and port: rows are sources, columns
 * destinations; `.` probe and model agree (allowed), ` ` agree (denied), `X` the model allows
 * but the probe was denied, `!` the probe got through where the model denies, `-` not probed.
 */
export function renderDiff(cells: Cell[], expected: Map<string, boolean>, actual: Map<string, boolean>): string {
  const lines: string[] = [];
  const nets = [...new Set(cells.map((c) => c.network))];
  for (const net of nets) {
    const inNet = cells.filter((c) => c.network === net);
    const names = [...new Set(inNet.flatMap((c) => [c.from, c.to]))].sort();
    const w = Math.max(4, ...names.map((n) => n.length));
    for (const p of [...new Map(inNet.map((c) => [`${c.proto}/${c.port}`, c])).keys()]) {
      lines.push(`network ${net}, ${p} (rows from, columns to):`);
      lines.push(`${''.padEnd(w)} ${names.map((n) => n.padStart(w)).join(' ')}`);
      for (const from of names) {
        const row = names.map((to) => {
          const c = inNet.find((x) => x.from === from && x.to === to && `${x.proto}/${x.port}` === p);
          if (!c) return '-'.padStart(w);
          const e = expected.get(cellKey(c));
          const a = actual.get(cellKey(c));
          const mark = e === a ? (a ? '.' : ' ') : e ? 'X' : '!';
          return mark.padStart(w);
        });
        lines.push(`${from.padEnd(w)} ${row.join(' ')}`);
      }
    }
  }
  return lines.join('\n');
}
