/**
 * Behaviours real clients notice: exec on a terminal, an exec of a missing command, removing a
 * restarting container, the container-wide MAC address of older API versions, and log drivers
 * (json-file rotation, `none`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, rawRequest } from './containers-support.js';

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
});
