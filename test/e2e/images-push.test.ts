/**
 * `docker push` to Debian's docker-registry (distribution v2) started on loopback inside the
 * daemon's own network namespace: Docker's progress lines, `Layer already exists` on a second
 * push, and a pull back after `rmi` that gives the same image id.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { inDaemonNetns, skipWithoutRegistry, startRegistry, type LocalRegistry } from './local-registry.js';

describe('images: docker push', { skip: skipWithoutRegistry }, () => {
  let d: TestDaemon;
  let dir: string;
  let registry: LocalRegistry | undefined;
  let port = 0;
  let repo = '';

  before(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'arca-registry-'));
    registry = await startRegistry(d, dir);
    port = registry.port;
    repo = `localhost:${port}/arca/busybox`;
  });

  after(async () => {
    registry?.stop();
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
    const [curl, ...curlArgs] = inDaemonNetns(d, ['curl', '-s', `http://127.0.0.1:${port}/v2/arca/busybox/tags/list`]);
    const tags = spawnSync(curl!, curlArgs, { encoding: 'utf8' });
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
