import { join } from 'node:path';
/**
 * Checks shared by the container end-to-end tests: what a daemon left on the machine, cgroup
 * files of a container, raw API requests, polling, and the docker CLI behind a real pty.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { daemonTag, type TestDaemon } from './harness.js';

export interface RawResponse {
  status: number;
  body: string;
}

/** One HTTP request on the daemon's socket; `body` is sent verbatim (it may be malformed on purpose). */
export function rawRequest(socket: string, method: string, path: string, body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const req = request({ socketPath: socket, method, path, headers, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` until it returns a value other than undefined; throws with `what` after `limitMs`.
 * This waits for a state, it does not time anything.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = 20_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

/** Mount points under the daemon's folders, and its container netns: what a removed container must not leave. */
export function leftovers(d: TestDaemon): { mounts: string[]; netns: string[] } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m.startsWith(d.root + '/') || m.startsWith(d.execRoot + '/'));
  const r = spawnSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' });
  let names: string[] = [];
  try {
    names = ((JSON.parse(r.stdout || '[]') as Array<{ name: string }> | null) ?? []).map((n) => n.name);
  } catch {
    /* no namespaces */
  }
  const prefix = `arca-${daemonTag(d.root)}-`;
  // The daemon keeps a few namespaces ready for starts and lists them here: not leftovers.
  let pooled: string[] = [];
  try {
    pooled = readFileSync(join(d.execRoot, 'netns-pool'), 'utf8').split('\n').filter(Boolean);
  } catch {
    /* no pool yet */
  }
  return { mounts, netns: names.filter((n) => n.startsWith(prefix) && !pooled.includes(n)) };
}

/**
 * What a removed or exited container left: its rootfs mounts, and any namespace of the daemon
 * that is neither pooled nor held by a running container (namespace names are not tied to ids).
 */
export async function leftoversOf(d: TestDaemon, id: string): Promise<{ mounts: string[]; netns: string[] }> {
  const all = leftovers(d);
  const running = (await d.dockerOk(['ps', '-q', '--no-trunc'])).split('\n').filter(Boolean);
  const keys = running.length ? (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', ...running])).split('\n') : [];
  const held = new Set(keys.map((k) => k.split('/').pop()));
  return { mounts: all.mounts.filter((m) => m.includes(id)), netns: all.netns.filter((n) => !held.has(n)) };
}

/**
 * Reads a cgroup file of a process, v1 (`<controller>` hierarchy, `v1File`) or v2 (`v2File`),
 * wherever the hierarchies are mounted.
 */
export function cgroupValue(pid: number, controller: string, v1File: string, v2File: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean);
  const v1 = lines.find((l) => l.split(':')[1]!.split(',').includes(controller));
  if (v1) {
    const path = v1.split(':').slice(2).join(':');
    const m = mounts.find((l) => {
      const [, post] = l.split(' - ');
      return post?.startsWith('cgroup ') && post.split(' ')[2]!.split(',').includes(controller);
    });
    if (!m) throw new Error(`no cgroup v1 mount with ${controller}`);
    return readFileSync(`${m.split(' ')[4]}${path}/${v1File}`, 'utf8').trim();
  }
  const v2 = lines.find((l) => l.startsWith('0::'));
  const m = mounts.find((l) => l.split(' - ')[1]?.startsWith('cgroup2 '));
  if (!v2 || !m) throw new Error(`process ${pid} has no ${controller} cgroup`);
  return readFileSync(`${m.split(' ')[4]}${v2.slice(3)}/${v2File}`, 'utf8').trim();
}

export interface PtyResult {
  code: number;
  output: string;
}

/**
 * Runs a docker command line under a real pty (util-linux `script`). Each step waits until the
 * output so far matches `expect`, then types `send`. The pty stays open until docker exits.
 */
export function runInPty(
  d: TestDaemon,
  command: string,
  steps: Array<{ expect: RegExp; send: string }>,
  timeoutMs = 30_000,
): Promise<PtyResult> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...d.env, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    const advance = (): void => {
      while (step < steps.length && steps[step]!.expect.test(output)) {
        child.stdin.write(steps[step]!.send);
        step++;
      }
    };
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString('utf8');
      advance();
    });
    child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.stdin.on('error', () => {});
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
    advance();
  });
}

/** `docker inspect` of one container, parsed. */
export async function inspect(d: TestDaemon, ref: string): Promise<ContainerJson> {
  return (JSON.parse(await d.dockerOk(['inspect', ref])) as ContainerJson[])[0]!;
}

export interface ContainerJson {
  Id: string;
  Name: string;
  RestartCount: number;
  State: { Status: string; Running: boolean; Paused: boolean; Pid: number; ExitCode: number; Error: string };
  Config: { Hostname: string; Env: string[]; User: string; WorkingDir: string; Labels: Record<string, string>; Tty: boolean };
  HostConfig: { RestartPolicy: { Name: string; MaximumRetryCount: number }; NetworkMode: string; Memory: number; NanoCpus: number };
  Mounts: Array<{ Type: string; Name?: string; Source: string; Destination: string; RW: boolean }>;
}
