/**
 * `docker build` end to end (classic builder API, run by buildah in arca's own storage): the CLI
 * with .dockerignore, -f, several -t, --build-arg, --label, --target, multi-stage COPY --from,
 * RUN steps on arca's networks (default bridge, a user-defined network's DNS, none), the cache,
 * docker-compose build / up --build, docker-py, and the error cases with nothing left behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonTag, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const PYTHON = '/usr/bin/python3';
const COMPOSE = '/usr/bin/docker-compose';
const haveDockerPy = spawnSync(PYTHON, ['-c', 'import docker'], { encoding: 'utf8' }).status === 0;
const haveCompose = spawnSync(COMPOSE, ['version'], { encoding: 'utf8' }).status === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, stdout, stderr });
    });
  });
}

/** Writes a context folder from a map of relative paths to contents. */
function context(root: string, name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

describe('docker build', () => {
  let d: TestDaemon;
  let tmp: string;
  /** Runs buildah on the daemon's build storage (to check it is left clean). */
  const buildah = (args: string[]): string => {
    const r = spawnSync(
      'buildah',
      ['--root', join(d.root, 'build', 'storage'), '--runroot', join(d.execRoot, 'build', 'run'), '--storage-driver', 'overlay', ...args],
      { encoding: 'utf8', env: { ...process.env, CONTAINERS_STORAGE_CONF: join(d.root, 'build', 'conf', 'storage.conf') } },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout;
  };
  /** What must be empty after any build: buildah's working containers, build namespaces, scratch folders. */
  const leftovers = (): string[] => {
    const out: string[] = [];
    const ctrs = buildah(['containers', '-q']).trim();
    if (ctrs) out.push(`containers: ${ctrs}`);
    const mine = readdirSync('/run/netns').filter((n) => n.startsWith(`arca-${daemonTag(d.root)}-b`));
    if (mine.length) out.push(`netns: ${mine.join(' ')}`);
    const scratch = join(d.root, 'build', 'tmp');
    if (existsSync(scratch) && readdirSync(scratch).length) out.push(`tmp: ${readdirSync(scratch).join(' ')}`);
    return out;
  };

  before(async () => {
    d = await startDaemon();
    tmp = mkdtempSync(join(tmpdir(), 'arca-build-e2e-'));
  });

  after(async () => {
    await d?.cleanup();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('builds with -f, several -t, --build-arg, --label and .dockerignore', async () => {
    const dir = context(tmp, 'basic', {
      'build/app.Dockerfile': [
        `FROM ${TEST_IMAGE}`,
        'ARG GREETING=unset',
        'COPY . /ctx',
        'RUN echo "$GREETING" > /greeting && ls -A /ctx | sort > /listing',
        'ENV MODE=built',
        'CMD ["cat", "/greeting"]',
        '',
      ].join('\n'),
      'keep.txt': 'kept\n',
      'secret.key': 'never sent\n',
      'logs/a.log': 'no\n',
      '.dockerignore': 'secret.key\nlogs\n',
    });
    const r = await d.docker(['build', '-f', join(dir, 'build/app.Dockerfile'), '-t', 'arca-b/basic:1', '-t', 'arca-b/basic:latest', '--build-arg', 'GREETING=hello', '--label', 'via=arca', dir], {
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Step 1\/\d+ : FROM arca-test\/busybox:latest/);
    assert.match(r.stdout, /Successfully built [0-9a-f]{12}/);
    assert.match(r.stdout, /Successfully tagged arca-b\/basic:1/);
    assert.match(r.stdout, /Successfully tagged arca-b\/basic:latest/);
    assert.equal(await d.dockerOk(['run', '--rm', 'arca-b/basic:1']), 'hello');
    const listing = await d.dockerOk(['run', '--rm', 'arca-b/basic:1', 'cat', '/listing']);
    assert.deepEqual(listing.split('\n'), ['.dockerignore', 'build', 'keep.txt']);
    assert.equal(await d.dockerOk(['image', 'inspect', '-f', '{{.Config.Labels.via}} {{index .Config.Env 1}}', 'arca-b/basic:latest']), 'arca MODE=built');
    // The base layers are the test image's own: shared, not copied.
    const base = JSON.parse(await d.dockerOk(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', TEST_IMAGE])) as string[];
    const built = JSON.parse(await d.dockerOk(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', 'arca-b/basic:1'])) as string[];
    assert.deepEqual(built.slice(0, base.length), base);
    assert.deepEqual(leftovers(), []);
  });
});
