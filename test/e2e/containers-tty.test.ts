/**
 * Containers with a terminal, driven through a real pty (util-linux `script`) the way a person
 * types: `docker run -it`, `docker exec -it`, terminal size, detach keys, and `run -t` logs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, inspect, runInPty } from './containers-support.js';

const IMG = TEST_IMAGE;
const haveScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
/** The shell prompt; busybox may follow it with a cursor position query (ESC [6n). */
const PROMPT = /# (\x1b\[6n)?$/;

describe('containers: TTY', { skip: haveScript ? false : 'util-linux script is not installed' }, () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  it('docker run -it: the shell echoes what is typed, runs it, and its exit code comes back', async () => {
    const r = await runInPty(d, `docker run -it --rm --name tty1 ${IMG} sh`, [
      { expect: PROMPT, send: 'echo typed-$((6*7))\n' },
      { expect: /typed-42/, send: 'exit 9\n' },
    ]);
    assert.equal(r.code, 9, r.output);
    assert.ok(r.output.includes('echo typed-$((6*7))'), r.output);
    assert.match(r.output, /\r\ntyped-42\r\n/);
    assert.equal(await d.dockerOk(['ps', '-aq', '--filter', 'name=tty1']), '');
  });

  it('docker run -it without --rm keeps the exit code in inspect', async () => {
    const r = await runInPty(d, `docker run -it --name tty2 ${IMG} sh`, [{ expect: PROMPT, send: 'exit 3\n' }]);
    assert.equal(r.code, 3, r.output);
    const c = await inspect(d, 'tty2');
    assert.equal(c.State.ExitCode, 3);
    assert.equal(c.Config.Tty, true);
    await d.dockerOk(['rm', 'tty2']);
  });

  it('the container sees a terminal of the client size', async () => {
    const r = await runInPty(d, `stty rows 31 cols 97; docker run -it --rm ${IMG} sh -c 'tty; stty size'`, []);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /\/dev\/pts\/\d+\r\n31 97\r\n/);
    // Without -t there is none.
    const plain = await d.docker(['run', '--rm', IMG, 'tty']);
    assert.equal(plain.code, 1);
    assert.match(plain.stdout, /not a tty/);
  });

  it('docker exec -it runs a shell in a running container', async () => {
    const id = await d.dockerOk(['run', '-d', '--name', 'tty-host', IMG, 'sleep', '1000']);
    const r = await runInPty(d, `stty rows 20 cols 70; docker exec -it tty-host sh`, [
      { expect: PROMPT, send: 'echo in-exec-$((2+3)); stty size; tty\n' },
      { expect: /\/dev\/pts\/\d+\r\n.*# /, send: 'exit 4\n' },
    ]);
    assert.equal(r.code, 4, r.output);
    assert.ok(r.output.includes('echo in-exec-$((2+3))'), r.output);
    assert.match(r.output, /\r\nin-exec-5\r\n20 70\r\n\/dev\/pts\/\d+\r\n/);
    // The exec's shell is gone, the container is not.
    assert.equal((await inspect(d, id)).State.Status, 'running');
    const top = await d.dockerOk(['top', id, '-o', 'pid,comm']);
    assert.deepEqual(top.split('\n').slice(1).map((l) => l.split(/\s+/)[1]), ['sleep']);
    await d.dockerOk(['rm', '-f', id]);
  });

  it('docker exec -t (no -i) prints with CRLF and returns the code', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
    const r = await runInPty(d, `docker exec -t ${id} sh -c 'echo a; echo b >&2; exit 2'`, []);
    assert.equal(r.code, 2, r.output);
    // The container's pty turns \n into \r\n, and without -i the CLI leaves the local terminal
    // cooked, so it adds its own \r.
    assert.match(r.output, /a\r+\nb\r+\n/);
    await d.dockerOk(['rm', '-f', id]);
  });

  it('ctrl-p ctrl-q detaches and leaves the container running', async () => {
    const r = await runInPty(d, `docker run -it --name tty-detach ${IMG} sh`, [{ expect: PROMPT, send: '\x10\x11' }]);
    assert.equal(r.code, 0, r.output);
    assert.equal((await inspect(d, 'tty-detach')).State.Status, 'running');
    // And attach comes back to it.
    // attach shows nothing until there is output: type at once.
    const again = await runInPty(d, 'docker attach tty-detach', [
      { expect: /^/, send: 'echo back-$((1+1))\n' },
      { expect: /back-2/, send: 'exit 5\n' },
    ]);
    assert.equal(again.code, 5, again.output);
    await eventually('the exit', async () => ((await inspect(d, 'tty-detach')).State.Status === 'exited' ? true : undefined));
    await d.dockerOk(['rm', 'tty-detach']);
  });

  it('docker run -t logs carry the terminal output', async () => {
    const id = await d.dockerOk(['run', '-d', '-t', IMG, 'sh', '-c', 'echo line1; echo line2']);
    await d.dockerOk(['wait', id]);
    const r = await d.docker(['logs', id]);
    assert.equal(r.stdout, 'line1\r\nline2\r\n');
    await d.dockerOk(['rm', id]);
  });
});
