/**
 * `docker push` to Debian's docker-registry (distribution v2) started on loopback inside the
 * daemon's own network namespace: Docker's progress lines, `Layer already exists` on a second
 * push, and a pull back after `rmi` that gives the same image id.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const REGISTRY = '/usr/bin/docker-registry';

describe('images: docker push', { skip: existsSync(REGISTRY) ? false : 'docker-registry is not installed (apt-get install docker-registry)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let registry: ChildProcess | undefined;
  const port = 5000 + Math.floor(Math.random() * 1000);
  const repo = `localhost:${port}/arca/busybox`;

  before(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'arca-registry-'));
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
    );
    registry = spawn('nsenter', [`--net=/run/netns/${d.hostNs}`, REGISTRY, 'serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const r = spawnSync('nsenter', [`--net=/run/netns/${d.hostNs}`, 'curl', '-sf', '-o', '/dev/null', `http://127.0.0.1:${port}/v2/`]);
      if (r.status === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('docker-registry did not come up');
  });

  after(async () => {
    if (registry?.pid) {
      try {
        process.kill(registry.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await d?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pushes with Docker\'s progress, then pulls back the same image', async () => {
    await d.dockerOk(['tag', TEST_IMAGE, `${repo}:v1`]);
    const id = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', `${repo}:v1`]);
    const push = await d.dockerOk(['push', `${repo}:v1`]);
    assert.match(push, new RegExp(`The push refers to repository \\[${repo}\\]`));
    assert.match(push, /Pushed/);
    assert.match(push, /v1: digest: sha256:[0-9a-f]{64} size: \d+/);
    const digest = /v1: digest: (sha256:[0-9a-f]{64})/.exec(push)![1]!;
    assert.match(await d.dockerOk(['image', 'inspect', '-f', '{{json .RepoDigests}}', `${repo}:v1`]), new RegExp(`${repo}@${digest}`));
    const again = await d.dockerOk(['push', `${repo}:v1`]);
    assert.match(again, /Layer already exists/);
    const tags = spawnSync('nsenter', [`--net=/run/netns/${d.hostNs}`, 'curl', '-s', `http://127.0.0.1:${port}/v2/arca/busybox/tags/list`], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(tags.stdout).tags, ['v1']);
    await d.dockerOk(['rmi', `${repo}:v1`]);
    await d.dockerOk(['pull', `${repo}:v1`]);
    assert.equal(await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', `${repo}:v1`]), id);
  });

  it('pushes a committed image (two layers) that runs after a pull back', async () => {
    await d.dockerOk(['run', '--name', 'mk', TEST_IMAGE, 'sh', '-c', 'echo pushed > /hello']);
    const id = await d.dockerOk(['commit', 'mk', `${repo}:committed`]);
    await d.dockerOk(['rm', 'mk']);
    const push = await d.dockerOk(['push', `${repo}:committed`]);
    assert.match(push, /Layer already exists/); // the base layer went up with v1
    assert.match(push, /Pushed/);
    await d.dockerOk(['rmi', `${repo}:committed`]);
    await d.dockerOk(['pull', `${repo}:committed`]);
    assert.equal(await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', `${repo}:committed`]), id);
    assert.equal(await d.dockerOk(['run', '--rm', `${repo}:committed`, 'cat', '/hello']), 'pushed');
  });

  it('mounts blobs from another repository of the same registry', async () => {
    await d.dockerOk(['pull', `${repo}:v1`]);
    await d.dockerOk(['tag', `${repo}:v1`, `localhost:${port}/other/copy:v1`]);
    const push = await d.dockerOk(['push', `localhost:${port}/other/copy:v1`]);
    assert.match(push, /Mounted from arca\/busybox/);
    assert.match(push, /v1: digest: sha256:/);
  });

  it('answers Docker\'s errors', async () => {
    const r = await d.docker(['push', `localhost:${port}/nothing/here:v9`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /tag does not exist|An image does not exist locally/);
  });
});
