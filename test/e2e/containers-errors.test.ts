/**
 * Bad input to the container API, through the docker CLI and raw HTTP: Docker's status codes and
 * words, and nothing left behind by a request that failed (no container, mount or netns).
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { inspect, leftovers, rawRequest } from './containers-support.js';

const IMG = TEST_IMAGE;

describe('containers: errors', () => {
  let d: TestDaemon;
  /** Containers a test made on purpose; anything else in `ps -a` after a test is a leak. */
  let expected: string[] = [];

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  afterEach(async () => {
    const all = (await d.dockerOk(['ps', '-aq', '--no-trunc'])).split('\n').filter(Boolean);
    const stray = all.filter((id) => !expected.includes(id));
    if (all.length) await d.docker(['rm', '-f', ...all]);
    expected = [];
    assert.deepEqual(stray, [], 'a failed request left a container');
    assert.deepEqual(leftovers(d), { mounts: [], netns: [] }, 'a failed request left a mount or netns');
  });

  const api = (method: string, path: string, body?: unknown) =>
    rawRequest(d.socket, method, path, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  const message = (body: string): string => (JSON.parse(body) as { message: string }).message;

  it('an invalid name is 400 Invalid container name', async () => {
    const r = await d.docker(['run', '--name', 'a b', IMG, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /Invalid container name \(a b\), only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed/);
    const raw = await api('POST', '/containers/create?name=a%20b', { Image: IMG, Cmd: ['true'] });
    assert.equal(raw.status, 400);
    assert.match(message(raw.body), /^Invalid container name/);
  });

  it('a duplicate name is 409 Conflict', async () => {
    const id = await d.dockerOk(['create', '--name', 'dup', IMG, 'true']);
    expected.push(id);
    const r = await d.docker(['run', '--name', 'dup', IMG, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, new RegExp(`Conflict. The container name "/dup" is already in use by container "${id}". You have to remove \\(or rename\\) that container to be able to reuse that name.`));
    const raw = await api('POST', '/containers/create?name=dup', { Image: IMG, Cmd: ['true'] });
    assert.equal(raw.status, 409);
  });

  it('rm of a running container without -f is 409', async () => {
    const id = await d.dockerOk(['run', '-d', '--name', 'running1', IMG, 'sleep', '1000']);
    expected.push(id);
    const raw = await api('DELETE', '/containers/running1');
    assert.equal(raw.status, 409);
    assert.match(message(raw.body), /container is running: stop the container before removing or force remove/);
    assert.equal((await inspect(d, id)).State.Status, 'running');
  });

  it('kill of a stopped container is 409 is not running', async () => {
    const id = await d.dockerOk(['create', '--name', 'idle', IMG, 'true']);
    expected.push(id);
    const r = await d.docker(['kill', 'idle']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`Cannot kill container: idle: Container ${id} is not running`));
    assert.equal((await api('POST', '/containers/idle/kill')).status, 409);
  });

  it('kill with an unknown signal is 400', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
    expected.push(id);
    const raw = await api('POST', `/containers/${id}/kill?signal=BOGUS`);
    assert.equal(raw.status, 400);
    assert.match(message(raw.body), /Invalid signal: BOGUS/);
    assert.equal((await inspect(d, id)).State.Status, 'running');
  });

  it('an unknown container is 404 No such container, for every verb', async () => {
    for (const args of [['container', 'inspect'], ['start'], ['stop'], ['kill'], ['rm'], ['logs'], ['wait'], ['restart'], ['pause'], ['top'], ['port']]) {
      const r = await d.docker([...args, 'ghost']);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /No such container: ghost/, args.join(' '));
    }
    assert.equal((await api('GET', '/containers/ghost/json')).status, 404);
    assert.equal((await api('DELETE', '/containers/ghost')).status, 404);
  });

  it('a missing image is 404 No such image; docker run tries to pull and fails cleanly', async () => {
    const raw = await api('POST', '/containers/create', { Image: 'no/such-image:1', Cmd: ['true'] });
    assert.equal(raw.status, 404);
    assert.match(message(raw.body), /No such image: no\/such-image:1/);
    // No registry is reachable here: the pull must fail, not hang.
    const r = await d.docker(['run', '--rm', 'no/such-image:1', 'true'], { timeoutMs: 45_000 });
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /Unable to find image 'no\/such-image:1' locally/);
  });

  it('a malformed JSON body is 400', async () => {
    for (const body of ['{"Image":', 'not json', '[1,2]']) {
      const raw = await api('POST', '/containers/create', body);
      assert.equal(raw.status, 400, `${body}: ${raw.body}`);
      assert.equal(typeof message(raw.body), 'string');
    }
  });

  it('a wrongly typed field is 400', async () => {
    for (const body of [
      { Image: IMG, Cmd: 5 },
      { Image: IMG, Cmd: ['true'], Env: 'A=1' },
      { Image: IMG, Cmd: ['true'], Tty: 'yes' },
      { Image: IMG, Cmd: ['true'], HostConfig: { Memory: '64m' } },
      { Image: IMG, Cmd: ['true'], HostConfig: { Binds: [5] } },
      { Image: 5 },
    ]) {
      const raw = await api('POST', '/containers/create', body);
      assert.equal(raw.status, 400, `${JSON.stringify(body)}: ${raw.body}`);
    }
  });

  it('an unknown restart policy is 400', async () => {
    const r = await d.docker(['run', '--restart', 'bogus', IMG, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'/);
    const raw = await api('POST', '/containers/create', { Image: IMG, Cmd: ['true'], HostConfig: { RestartPolicy: { Name: 'bogus' } } });
    assert.equal(raw.status, 400);
  });

  it('a too small memory limit is 400', async () => {
    const r = await d.docker(['run', '--memory', '1m', IMG, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /Minimum memory limit allowed is 6MB/);
  });

  it('a command that does not exist: 127, Docker message, the container stays created and clean', async () => {
    const r = await d.docker(['run', '--name', 'nocmd', IMG, 'no-such-command']);
    assert.equal(r.code, 127, r.stderr);
    assert.match(r.stderr, /exec: "no-such-command": executable file not found in \$PATH/);
    const c = await inspect(d, 'nocmd');
    expected.push(c.Id);
    assert.equal(c.State.Status, 'created');
    assert.equal(c.State.ExitCode, 127);
    assert.match(c.State.Error, /executable file not found/);
    // A wait on it answers at once, with the error that ended its start (as dockerd 20.10).
    const w = await api('POST', `/containers/${c.Id}/wait`);
    assert.deepEqual(JSON.parse(w.body), { StatusCode: 127, Error: { Message: c.State.Error } });
    // With --rm it is gone at once; its `removed` wait carries no error, so the CLI prints only the start's.
    const rm = await d.docker(['run', '--rm', '--name', 'nocmd-rm', IMG, 'no-such-command']);
    assert.equal(rm.code, 127, rm.stderr);
    assert.doesNotMatch(rm.stderr, /Error waiting for container/);
    assert.equal(await d.dockerOk(['ps', '-aq', '--filter', 'name=nocmd-rm']), '');
  });

  it('an unknown user fails the start and leaves the container clean', async () => {
    const r = await d.docker(['run', '--name', 'nouser', '-u', 'nobody-here', IMG, 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unable to find user nobody-here: no matching entries in passwd file/);
    expected.push((await inspect(d, 'nouser')).Id);
  });

  it('a bind of a relative path or a bad mode is refused before anything is made', async () => {
    const raw = await api('POST', '/containers/create', { Image: IMG, Cmd: ['true'], HostConfig: { Binds: ['/tmp:/data:bogus'] } });
    assert.equal(raw.status, 400);
    const rel = await api('POST', '/containers/create', { Image: IMG, Cmd: ['true'], HostConfig: { Binds: ['/tmp:data'] } });
    assert.equal(rel.status, 400);
  });

  it('exec of a missing binary leaves nothing running', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
    expected.push(id);
    const r = await d.docker(['exec', id, 'no-such-binary']);
    // dockerd ends an exec its runtime could not start with 126 (a run of one is 127).
    assert.equal(r.code, 126);
    const top = await d.dockerOk(['top', id, '-o', 'pid,comm']);
    assert.deepEqual(top.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[1]), ['sleep']);
    assert.equal((await inspect(d, id)).State.Status, 'running');
  });

  it('exec as an unknown user: the reason on stdout and 126, as dockerd (checked against 20.10)', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
    expected.push(id);
    for (const flags of [[], ['-t'], ['-i']]) {
      const r = await d.docker(['exec', ...flags, '-u', 'nobody-here', id, 'id']);
      assert.equal(r.code, 126, `${flags.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /unable to find user nobody-here: no matching entries in passwd file/);
    }
    // Detached, there is no stream: the start request itself fails.
    const det = await d.docker(['exec', '-d', '-u', 'nobody-here', id, 'id']);
    assert.equal(det.code, 1);
    assert.match(det.stderr, /Error response from daemon: unable to find user nobody-here/);
    assert.equal((await inspect(d, id)).State.Status, 'running');
  });

  it('a working directory that is a file is Docker\'s "Cannot mkdir", with no host path in it', async () => {
    const r = await d.docker(['run', '--name', 'wdfile', '-w', '/etc/passwd', IMG, 'pwd']);
    expected.push((await inspect(d, 'wdfile')).Id);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /Error response from daemon: Cannot mkdir: \/etc\/passwd is not a directory/);
    const deeper = await d.docker(['run', '--rm', '-w', '/etc/passwd/sub', IMG, 'pwd']);
    assert.match(deeper.stderr, /Cannot mkdir: \/etc\/passwd\/sub is not a directory/);
  });

  it('a working directory under an absolute symlink of the image is made inside the rootfs', async () => {
    const hostDir = `/tmp/arca-wd-escape-${process.pid}`;
    await d.dockerOk(['run', '--name', 'wdlink', IMG, 'ln', '-s', hostDir, '/wdlink']);
    await d.dockerOk(['commit', 'wdlink', 'arca-test/wdlink:1']);
    try {
      const out = await d.dockerOk(['run', '--rm', '-w', '/wdlink/sub', 'arca-test/wdlink:1', 'sh', '-c', `test -d ${hostDir}/sub && echo inside`]);
      assert.equal(out, 'inside');
      assert.equal(existsSync(hostDir), false, 'the link was followed on the host');
    } finally {
      await d.docker(['rm', '-f', 'wdlink']);
      await d.docker(['rmi', 'arca-test/wdlink:1']);
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('--network container: of a missing or stopped container is refused', async () => {
    const r = await d.docker(['run', '--rm', '--network', 'container:ghost', IMG, 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /No such container: ghost/);
    assert.doesNotMatch(r.stderr, /Unable to find image/);
    const stopped = await d.dockerOk(['create', '--name', 'stopped-owner', IMG, 'true']);
    expected.push(stopped);
    const s = await d.docker(['run', '--rm', '--network', 'container:stopped-owner', IMG, 'true']);
    assert.notEqual(s.code, 0);
    assert.match(s.stderr, new RegExp(`cannot join network of a non running container: ${stopped}`));
  });
});
