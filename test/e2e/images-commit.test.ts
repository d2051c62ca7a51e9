/**
 * `docker commit` with the stock docker CLI and docker-py: the container's changes (additions,
 * deletions, an opaque folder) become a layer of a new image that runs, with `--change`, `-m`,
 * `-a`, the parent link and a history entry; errors leave nothing behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';

describe('images: docker commit', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  const scratchLeft = (): string[] => {
    const tmp = join(d.root, 'images', 'tmp');
    return existsSync(tmp) ? readdirSync(tmp) : [];
  };

  it('commits a running container with --change, -m and -a, and the image runs', async () => {
    await d.dockerOk(['run', '-d', '--name', 'base', TEST_IMAGE, 'sleep', '600']);
    await d.dockerOk(['exec', 'base', 'sh', '-c', 'echo hello > /newfile && rm /bin/ls && rm -rf /var && mkdir -p /var && touch /var/only']);
    const id = await d.dockerOk([
      'commit', '-m', 'my message', '-a', 'Jane <jane@example.com>',
      '--change', 'ENV FOO=bar', '--change', 'CMD ["cat", "/newfile"]', '--change', 'LABEL stage=committed',
      'base', 'committed:v1',
    ]);
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    // The container was paused for the copy and runs again.
    assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.Status}}', 'base']), 'running');
    assert.equal(await d.dockerOk(['run', '--rm', 'committed:v1']), 'hello');
    const ls = await d.docker(['run', '--rm', 'committed:v1', 'ls', '/bin/ls']);
    assert.notEqual(ls.code, 0);
    assert.equal(await d.dockerOk(['run', '--rm', 'committed:v1', 'sh', '-c', 'echo /var/*']), '/var/only');
    const img = JSON.parse(await d.dockerOk(['image', 'inspect', 'committed:v1']))[0] as Record<string, any>;
    assert.equal(img.Id, id);
    assert.equal(img.Comment, 'my message');
    assert.equal(img.Author, 'Jane <jane@example.com>');
    assert.ok((img.Config.Env as string[]).includes('FOO=bar'));
    assert.deepEqual(img.Config.Cmd, ['cat', '/newfile']);
    assert.equal(img.Config.Labels.stage, 'committed');
    const baseImg = JSON.parse(await d.dockerOk(['image', 'inspect', TEST_IMAGE]))[0] as Record<string, any>;
    assert.equal(img.RootFS.Layers.length, baseImg.RootFS.Layers.length + 1);
    assert.deepEqual(img.RootFS.Layers.slice(0, -1), baseImg.RootFS.Layers);
    const hist = (await d.dockerOk(['history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.Comment}}', 'committed:v1'])).split('\n');
    assert.equal(hist[0], 'sleep 600|my message');
    assert.equal(scratchLeft().length, 0);
    const ev = await d.dockerOk(['events', '--since', '0', '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'event=commit', '--format', '{{.Action}} {{.Actor.Attributes.imageRef}}']);
    assert.match(ev, /^commit committed:v1$/m);
  });

  it('commits a stopped container without pausing, untagged', async () => {
    await d.dockerOk(['run', '--name', 'stopped', TEST_IMAGE, 'sh', '-c', 'echo later > /later']);
    const id = await d.dockerOk(['commit', '--pause=false', 'stopped']);
    assert.equal(await d.dockerOk(['run', '--rm', id, 'cat', '/later']), 'later');
    await d.dockerOk(['rm', 'stopped']);
  });

  it('keeps file capabilities in the committed layer', async () => {
    await d.dockerOk(['run', '-d', '--name', 'caps', TEST_IMAGE, 'sleep', '600']);
    await d.dockerOk(['exec', 'caps', 'cp', '/bin/busybox', '/pinger']);
    // What `setcap cap_net_raw+ep /pinger` inside the container leaves in its upper dir.
    const id = await d.dockerOk(['inspect', '-f', '{{.Id}}', 'caps']);
    const set = spawnSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(d.root, 'containers', id, 'upper', 'pinger')], { encoding: 'utf8' });
    assert.equal(set.status, 0, set.stderr);
    await d.dockerOk(['commit', 'caps', 'caps:1']);
    await d.dockerOk(['rm', '-f', 'caps']);
    await d.dockerOk(['run', '-d', '--name', 'caps2', 'caps:1', 'sleep', '600']);
    const pid = await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'caps2']);
    const get = spawnSync('getfattr', ['-n', 'security.capability', '-e', 'hex', `/proc/${pid}/root/pinger`], { encoding: 'utf8' });
    assert.match(get.stdout, /security.capability=0x0100000200200000000000000000000000000000/, get.stderr);
    await d.dockerOk(['rm', '-f', 'caps2']);
  });

  it('answers Docker\'s errors and leaves nothing behind', async () => {
    const before = await d.dockerOk(['images', '-q', '-a', '--no-trunc']);
    const gone = await d.docker(['commit', 'ghost', 'x:y']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /No such container: ghost/);
    const bad = await d.docker(['commit', '--change', 'FROM busybox', 'base', 'bad:1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /from is not a valid change command/);
    const badTag = await d.docker(['commit', 'base', 'Bad Name']);
    assert.notEqual(badTag.code, 0);
    assert.equal(await d.dockerOk(['images', '-q', '-a', '--no-trunc']), before);
    assert.equal(scratchLeft().length, 0);
  });

  it('commits through docker-py', { skip: skipWithoutDockerPy }, () => {
    const script = `
import docker, sys
cli = docker.DockerClient(base_url=sys.argv[1])
c = cli.containers.get('base')
img = c.commit(repository='pycommit', tag='t1', message='from py', changes=['ENV PY=1'])
print(img.tags[0], 'PY=1' in img.attrs['Config']['Env'], cli.containers.run('pycommit:t1', 'cat /newfile', remove=True).decode().strip())
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'pycommit:t1 True hello');
  });
});
