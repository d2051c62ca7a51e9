/**
 * Behaviours real clients notice: exec on a terminal, an exec of a missing command, removing a
 * restarting container, the container-wide MAC address of older API versions, and log drivers
 * (json-file rotation, `none`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { existsSync, statSync } from 'node:fs';
import { eventually, inspect, rawRequest } from './containers-support.js';

const IMG = TEST_IMAGE;

describe('containers: behaviours clients notice', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  describe('exec', () => {
    let id = '';
    before(async () => {
      id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
    });
    after(async () => {
      await d.docker(['rm', '-f', id]);
    });

    it('-t runs on a pseudo-terminal, without stdin: \\r\\n line endings', async () => {
      const r = await d.docker(['exec', '-t', id, 'echo', 'hi']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hi\r\n');
      const tty = await d.docker(['exec', '-t', id, 'sh', '-c', 'tty; echo err >&2']);
      assert.match(tty.stdout, /^\/dev\/pts\/\d+\r\nerr\r\n$/);
      // With stdin (`exec -it` from a terminal) is in containers-tty.test.ts.
      const plain = await d.docker(['exec', id, 'echo', 'hi']);
      assert.equal(plain.stdout, 'hi\n');
    });

    it('a command that does not exist ends with 126 and Docker\'s message, with or without a terminal', async () => {
      for (const flags of [[], ['-t'], ['-i']]) {
        const r = await d.docker(['exec', ...flags, id, 'nosuch']);
        assert.equal(r.code, 126, `${flags.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, /OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": executable file not found in \$PATH: unknown/);
      }
      const run = await d.docker(['run', '--rm', IMG, 'nosuch']);
      assert.equal(run.code, 127, 'a run of a missing command stays 127');
    });
  });

  it('rm of a restarting container without -f is 409 with Docker\'s text; -f removes it', async () => {
    const id = await d.dockerOk(['run', '-d', '--restart', 'always', IMG, 'sh', '-c', 'exit 1']);
    const r = await eventually('rm to meet the restarting state', async () => {
      const st = await d.dockerOk(['inspect', '-f', '{{.State.Status}}', id]);
      if (st !== 'restarting') return undefined;
      const raw = await rawRequest(d.socket, 'DELETE', `/containers/${id}`);
      return raw.status === 409 && raw.body.includes('restarting') ? raw : undefined;
    });
    assert.equal(
      (JSON.parse(r.body) as { message: string }).message,
      `You cannot remove a restarting container ${id}. Stop the container before attempting removal or force remove`,
    );
    await d.dockerOk(['rm', '-f', id]);
    assert.equal(await d.dockerOk(['ps', '-aq', '--filter', `id=${id}`]), '');
  });

  describe('MAC address', () => {
    it('Config.MacAddress of an older API version is the interface\'s MAC', async () => {
      const mac = '02:42:ac:11:00:99';
      const r = await rawRequest(d.socket, 'POST', '/v1.43/containers/create?name=oldmac', JSON.stringify({ Image: IMG, Cmd: ['sleep', '1000'], MacAddress: mac }));
      assert.equal(r.status, 201, r.body);
      await d.dockerOk(['start', 'oldmac']);
      assert.equal(await d.dockerOk(['exec', 'oldmac', 'cat', '/sys/class/net/eth0/address']), mac);
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.bridge.MacAddress}}', 'oldmac']), mac);
      await d.dockerOk(['rm', '-f', 'oldmac']);
    });

    it('--mac-address (EndpointsConfig) on a user network; conflicts are 400', async () => {
      await d.dockerOk(['network', 'create', 'macnet']);
      const mac = '02:42:0a:00:00:42';
      const id = await d.dockerOk(['run', '-d', '--network', 'macnet', '--mac-address', mac, IMG, 'sleep', '1000']);
      assert.equal(await d.dockerOk(['exec', id, 'cat', '/sys/class/net/eth0/address']), mac);
      await d.dockerOk(['rm', '-f', id]);
      const host = await rawRequest(d.socket, 'POST', '/v1.43/containers/create', JSON.stringify({ Image: IMG, MacAddress: mac, HostConfig: { NetworkMode: 'host' } }));
      assert.equal(host.status, 400);
      assert.match(host.body, /conflicting options: mac-address and the network mode/);
      const clash = await rawRequest(
        d.socket,
        'POST',
        '/v1.44/containers/create',
        JSON.stringify({ Image: IMG, MacAddress: mac, HostConfig: { NetworkMode: 'macnet' }, NetworkingConfig: { EndpointsConfig: { macnet: { MacAddress: '02:42:0a:00:00:43' } } } }),
      );
      assert.equal(clash.status, 400);
      assert.match(clash.body, /the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty/);
      assert.equal(await d.dockerOk(['ps', '-aq']), '');
      await d.dockerOk(['network', 'rm', 'macnet']);
    });
  });

  describe('log drivers', () => {
    it('json-file max-size/max-file rotate the log; logs reads across the files, follow too', async () => {
      const script = 'sleep 1; i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo "line-$i-padding-padding-padding"; usleep 20000; done; sleep 1000';
      const id = await d.dockerOk(['run', '-d', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=3', IMG, 'sh', '-c', script]);
      const c = await inspect(d, id);
      assert.deepEqual((c.HostConfig as unknown as { LogConfig: unknown }).LogConfig, { Type: 'json-file', Config: { 'max-file': '3', 'max-size': '1k' } });
      const follow = d.docker(['logs', '-f', id], { timeoutMs: 15_000 });
      const logPath = await d.dockerOk(['inspect', '-f', '{{.LogPath}}', id]);
      await eventually('the last line', async () => ((await d.dockerOk(['logs', '--tail', '1', id])) === 'line-60-padding-padding-padding' ? true : undefined));
      assert.ok(existsSync(`${logPath}.1`) && existsSync(`${logPath}.2`), 'two rotated files');
      assert.ok(!existsSync(`${logPath}.3`), 'no more than max-file files');
      for (const f of [logPath, `${logPath}.1`, `${logPath}.2`]) assert.ok(statSync(f).size < 4096, `${f} is ${statSync(f).size} bytes`);
      const lines = (await d.dockerOk(['logs', id])).split('\n');
      const nums = lines.map((l) => Number(/^line-(\d+)-/.exec(l)?.[1]));
      assert.ok(nums[0]! > 1, 'the oldest lines are gone');
      assert.deepEqual(nums, Array.from({ length: nums.length }, (_, i) => nums[0]! + i), 'what is kept has no gap');
      assert.equal(nums.at(-1), 60);
      await d.dockerOk(['stop', '-t', '0', id]);
      const followed = await follow;
      const fnums = followed.stdout.trim().split('\n').map((l) => Number(/^line-(\d+)-/.exec(l)?.[1]));
      assert.deepEqual(fnums, Array.from({ length: 60 }, (_, i) => i + 1), 'logs -f saw every line across rotations');
      await d.dockerOk(['rm', id]);
    });

    it('driver none: attach still shows output, logs is refused with Docker\'s text', async () => {
      assert.equal(await d.dockerOk(['run', '--rm', '--log-driver', 'none', IMG, 'echo', 'hi']), 'hi');
      const id = await d.dockerOk(['run', '-d', '--log-driver', 'none', IMG, 'sh', '-c', 'echo hi; sleep 1000']);
      const r = await d.docker(['logs', id]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Error response from daemon: configured logging driver does not support reading/);
      const raw = await rawRequest(d.socket, 'GET', `/containers/${id}/logs?stdout=1`);
      assert.equal(raw.status, 501);
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.HostConfig.LogConfig.Type}}', id]), 'none');
      await d.dockerOk(['rm', '-f', id]);
    });

    it('an unknown driver or option is refused at create, nothing made', async () => {
      const before = await d.dockerOk(['ps', '-aq']);
      const r = await d.docker(['run', '--log-driver', 'nosuch', IMG, 'true']);
      assert.equal(r.code, 125);
      assert.match(r.stderr, /logger: no log driver named 'nosuch' is registered/);
      const opt = await d.docker(['create', '--log-opt', 'bogus=1', IMG, 'true']);
      assert.match(opt.stderr, /unknown log opt 'bogus' for json-file log driver/);
      const size = await d.docker(['create', '--log-opt', 'max-size=lots', IMG, 'true']);
      assert.notEqual(size.code, 0);
      assert.equal(await d.dockerOk(['ps', '-aq']), before);
    });
  });
});
