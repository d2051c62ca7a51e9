/**
 * Live-restore end to end: containers outlive the daemon (SIGKILL or SIGTERM), a restarted daemon
 * finds them running, streams their logs, records the exits it missed, applies restart policies and
 * auto-remove, and a daemon killed in the middle of a burst of creates comes back consistent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { alive, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, inspect, leftovers, sleep } from './containers-support.js';

const IMG = TEST_IMAGE;


/** A container that prints a counter twice a second. */
const TICKER = ['sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.5; done'];

describe('containers: live-restore', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  /** Kills the daemon, lets `whileDown` act on the machine, then starts the daemon again. */
  const killAndRestart = async (whileDown: () => Promise<void> = async () => {}): Promise<void> => {
    const pid = d.pid();
    process.kill(pid, 'SIGKILL');
    await eventually('the daemon to die', () => (alive(pid) ? undefined : true));
    await whileDown();
    await d.restart({ signal: 'SIGKILL' });
  };

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`running containers survive a daemon ${signal}, and are managed after it`, async () => {
      const id = await d.dockerOk(['run', '-d', IMG, ...TICKER]);
      const before = await inspect(d, id);
      await d.restart({ signal });
      const after = await inspect(d, id);
      assert.equal(after.State.Status, 'running');
      assert.equal(after.State.Pid, before.State.Pid);
      assert.ok(alive(after.State.Pid));
      assert.match(await d.dockerOk(['ps', '--filter', `id=${id}`, '--format', '{{.Status}}']), /^Up /);
      // Output written while the daemon was away is in the logs, and new output keeps coming.
      const count = (await d.dockerOk(['logs', id])).split('\n').length;
      await eventually('more output', async () => ((await d.dockerOk(['logs', id])).split('\n').length > count ? true : undefined));
      assert.equal(await d.dockerOk(['exec', id, 'echo', 'exec-after-restart']), 'exec-after-restart');
      // logs -f follows until the container stops.
      const following = d.docker(['logs', '-f', '--tail', '1', id], { timeoutMs: 30_000 });
      await sleep(700);
      await d.dockerOk(['stop', '-t', '1', id]);
      const f = await following;
      assert.equal(f.code, 0, f.stderr);
      assert.ok(f.stdout.split('\n').filter(Boolean).length >= 2, f.stdout);
      assert.equal((await inspect(d, id)).State.ExitCode, 137);
      assert.ok(!alive(before.State.Pid));
      await d.dockerOk(['rm', id]);
      assert.deepEqual(leftovers(d), { mounts: [], netns: [] });
    });
  }

  it('attach works on a container started by the previous daemon', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'while [ ! -f /tmp/go ]; do sleep 0.1; done; echo attached-output; exit 3']);
    await d.restart({ signal: 'SIGKILL' });
    const attaching = d.docker(['attach', id], { timeoutMs: 30_000 });
    // Nothing shows that the attach is in place: give it a moment before the output it must see.
    await sleep(1000);
    await d.dockerOk(['exec', id, 'touch', '/tmp/go']);
    const r = await attaching;
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'attached-output\n');
    await d.dockerOk(['rm', id]);
  });

  it('a container that exited while the daemon was down shows its real exit code', async () => {
    const id = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'trap "echo bye; exit 42" USR1; while true; do sleep 0.1; done']);
    const pid = (await inspect(d, id)).State.Pid;
    const before = Date.now();
    await killAndRestart(async () => {
      process.kill(pid, 'SIGUSR1');
      await eventually('the container to exit', () => (alive(pid) ? undefined : true));
    });
    const c = (await d.dockerOk(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt}}', id])).split(' ');
    assert.equal(c[0], 'exited');
    assert.equal(c[1], '42');
    assert.ok(Date.parse(c[2]!) >= before - 1000, c[2]);
    assert.equal(await d.dockerOk(['logs', id]), 'bye');
    assert.equal(await d.dockerOk(['wait', id]), '42');
    assert.deepEqual(leftovers(d), { mounts: [], netns: [] });
    await d.dockerOk(['rm', id]);
  });

  it('restart policies and --rm apply to exits the daemon missed', async () => {
    const always = await d.dockerOk(['run', '-d', '--restart', 'always', IMG, 'sleep', '1000']);
    const autoRm = await d.dockerOk(['run', '-d', '--rm', IMG, 'sleep', '1000']);
    const pids = [(await inspect(d, always)).State.Pid, (await inspect(d, autoRm)).State.Pid];
    await killAndRestart(async () => {
      for (const p of pids) process.kill(p, 'SIGKILL');
      await eventually('both to exit', () => (pids.some(alive) ? undefined : true));
    });
    const c = await eventually('the restart', async () => {
      const x = await inspect(d, always);
      return x.State.Status === 'running' && x.RestartCount === 1 ? x : undefined;
    });
    assert.notEqual(c.State.Pid, pids[0]);
    await eventually('auto-removal', async () => ((await d.dockerOk(['ps', '-aq', '--filter', `id=${autoRm}`])) === '' ? true : undefined));
    await d.dockerOk(['rm', '-f', always]);
  });

  it('a stopped container stays stopped and can start again after a restart', async () => {
    const id = await d.dockerOk(['run', '-d', '--restart', 'always', IMG, 'sleep', '1000']);
    await d.dockerOk(['stop', '-t', '0', id]);
    await d.restart({ signal: 'SIGKILL' });
    await sleep(500);
    assert.equal((await inspect(d, id)).State.Status, 'exited');
    await d.dockerOk(['start', id]);
    assert.equal((await inspect(d, id)).State.Status, 'running');
    await d.dockerOk(['rm', '-f', id]);
  });

  it('a daemon killed during a burst of creates comes back consistent', async (t) => {
    const runs = Array.from({ length: 8 }, (_, i) => d.docker(['run', '-d', '--name', `burst${i}`, IMG, 'sleep', '1000'], { timeoutMs: 30_000 }));
    await sleep(400);
    await d.restart({ signal: 'SIGKILL' });
    await Promise.all(runs);
    const rows = (await d.dockerOk(['ps', '-a', '--filter', 'name=burst', '--format', '{{.ID}} {{.Names}} {{.State}}'])).split('\n').filter(Boolean);
    t.diagnostic(`after the kill: ${rows.map((r) => r.split(' ').slice(1).join('=')).join(' ') || 'no containers'}`);
    for (const row of rows) {
      const [id, , st] = row.split(' ');
      const c = await inspect(d, id!);
      assert.ok(['created', 'running', 'exited'].includes(c.State.Status), row);
      // What says running is running.
      if (c.State.Status === 'running') assert.ok(alive(c.State.Pid), row);
      assert.equal(c.State.Status, st);
    }
    // Each name is usable again once removed, and nothing is left behind.
    if (rows.length) await d.dockerOk(['rm', '-f', ...rows.map((r) => r.split(' ')[0]!)]);
    assert.equal(await d.dockerOk(['ps', '-aq']), '');
    assert.deepEqual(leftovers(d), { mounts: [], netns: [] });
    const runcRoot = join(d.execRoot, 'runc');
    const list = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' });
    assert.equal(list.stdout.trim(), '', `runc still knows: ${list.stdout}`);
    assert.equal(await d.dockerOk(['run', '--rm', '--name', 'burst0', IMG, 'echo', 'ok']), 'ok');
  });
});
