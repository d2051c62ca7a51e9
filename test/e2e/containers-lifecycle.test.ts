/**
 * Container life cycle end to end with the stock docker CLI: stop, kill, restart, pause, rename,
 * top, wait, rm, prune, restart policies, auto-remove; logs and attach; exec.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, inspect, leftoversOf, rawRequest, sleep } from './containers-support.js';

const IMG = TEST_IMAGE;

/** A shell loop that reacts to `sig` by printing `got <sig>` and exiting with `code`. */
const trapping = (sig: string, code: number): string[] => [
  'sh',
  '-c',
  `trap "echo got ${sig}; exit ${code}" ${sig}; echo ready; while true; do sleep 0.1; done`,
];

describe('containers: life cycle', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  const state = async (ref: string): Promise<string> => d.dockerOk(['inspect', '-f', '{{.State.Status}}', ref]);
  const exitCode = async (ref: string): Promise<number> => Number(await d.dockerOk(['inspect', '-f', '{{.State.ExitCode}}', ref]));
  /** Runs a detached container and waits until it printed "ready" (its trap is set). */
  const runReady = async (args: string[]): Promise<string> => {
    const id = await d.dockerOk(['run', '-d', ...args]);
    await eventually('the container to be ready', async () => ((await d.dockerOk(['logs', id])).includes('ready') ? true : undefined));
    return id;
  };
  const assertNoLeftovers = async (id: string): Promise<void> => {
    assert.deepEqual(await leftoversOf(d, id), { mounts: [], netns: [] });
  };

  describe('stop, kill, restart, pause', () => {
    it('stop -t 1 kills a shell that ignores TERM: exit 137, cleaned up', async () => {
      // A shell as pid 1 has no default TERM action, so only the KILL after the grace ends it.
      const id = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'sleep 1000']);
      assert.equal(await d.dockerOk(['stop', '-t', '1', id]), id);
      assert.equal(await state(id), 'exited');
      assert.equal(await exitCode(id), 137);
      await assertNoLeftovers(id);
      await d.dockerOk(['rm', id]);
    });

    it('--init runs docker-init as pid 1, which passes the stop signal on', async (t) => {
      if (spawnSync('sh', ['-c', 'command -v docker-init || command -v tini-static'], { encoding: 'utf8' }).status !== 0) {
        t.skip('docker-init (tini) is not installed');
        return;
      }
      const ps = await d.dockerOk(['run', '--rm', '--init', IMG, 'ps', '-o', 'pid,comm']);
      assert.match(ps, /^\s*1 docker-init$/m);
      assert.match(ps, /^\s*\d+ ps$/m);
      const id = await d.dockerOk(['run', '-d', '--init', IMG, 'sleep', '1000']);
      assert.deepEqual((await inspect(d, id)).Mounts, []);
      // sleep as pid 1 would ignore TERM; under init it dies of it.
      await d.dockerOk(['stop', '-t', '20', id]);
      assert.equal(await exitCode(id), 143);
      await d.dockerOk(['rm', id]);
    });

    it('stop lets a TERM trap exit cleanly', async () => {
      const id = await runReady([IMG, ...trapping('TERM', 0)]);
      await d.dockerOk(['stop', id]);
      assert.equal(await exitCode(id), 0);
      assert.match(await d.dockerOk(['logs', id]), /got TERM/);
      await d.dockerOk(['rm', id]);
    });

    it('stop --signal sends the chosen signal', async () => {
      const id = await runReady([IMG, ...trapping('INT', 0)]);
      await d.dockerOk(['stop', '--signal', 'SIGINT', id]);
      assert.equal(await exitCode(id), 0);
      assert.match(await d.dockerOk(['logs', id]), /got INT/);
      await d.dockerOk(['rm', id]);
    });

    it('stop of a stopped container succeeds', async () => {
      const id = await d.dockerOk(['create', IMG, 'true']);
      assert.equal(await d.dockerOk(['stop', id]), id);
      await d.dockerOk(['rm', id]);
    });

    it('kill -s USR1 reaches a trap; plain kill gives 137', async () => {
      const id = await runReady([IMG, ...trapping('USR1', 7)]);
      await d.dockerOk(['kill', '-s', 'USR1', id]);
      assert.equal(await d.dockerOk(['wait', id]), '7');
      assert.match(await d.dockerOk(['logs', id]), /got USR1/);
      const id2 = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
      await d.dockerOk(['kill', id2]);
      assert.equal(await d.dockerOk(['wait', id2]), '137');
      await assertNoLeftovers(id2);
      await d.dockerOk(['rm', id, id2]);
    });

    it('restart runs the container again with a new process', async () => {
      const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
      const before = (await inspect(d, id)).State.Pid;
      await d.dockerOk(['restart', '-t', '0', id]);
      const after = await inspect(d, id);
      assert.equal(after.State.Status, 'running');
      assert.notEqual(after.State.Pid, before);
      // A manual restart is not a policy restart.
      assert.equal(after.RestartCount, 0);
      // And a stopped one starts.
      await d.dockerOk(['stop', '-t', '0', id]);
      await d.dockerOk(['restart', id]);
      assert.equal(await state(id), 'running');
      await d.dockerOk(['rm', '-f', id]);
    });

    it('start of an exited container runs it again, start -a shows its output', async () => {
      const id = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'echo run; exit 2']);
      assert.equal(await d.dockerOk(['wait', id]), '2');
      const r = await d.docker(['start', '-a', id]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, 'run\n');
      assert.equal(await d.dockerOk(['logs', id]), 'run\nrun');
      await d.dockerOk(['rm', id]);
    });

    it('pause and unpause', async () => {
      const id = await d.dockerOk(['run', '-d', '--name', 'pz', IMG, 'sh', '-c', 'while true; do date +%s%N > /tmp/t; sleep 0.05; done']);
      await d.dockerOk(['pause', id]);
      const c = await inspect(d, id);
      assert.equal(c.State.Status, 'paused');
      assert.equal(c.State.Paused, true);
      assert.equal(c.State.Running, true);
      assert.match(await d.dockerOk(['ps', '--filter', 'name=pz', '--format', '{{.Status}}']), /^Up .*\(Paused\)$/);
      assert.equal(await d.dockerOk(['ps', '-q', '--filter', 'status=paused']), id.slice(0, 12));
      // The frozen process really is frozen.
      const st = (await import('node:fs')).readFileSync(`/proc/${c.State.Pid}/status`, 'utf8');
      assert.match(st, /^State:\s+[SD]/m);
      const pausedAgain = await d.docker(['pause', id]);
      assert.notEqual(pausedAgain.code, 0);
      assert.match(pausedAgain.stderr, /is already paused/);
      const ex = await d.docker(['exec', id, 'true']);
      assert.notEqual(ex.code, 0);
      assert.match(ex.stderr, /is paused/);
      await d.dockerOk(['unpause', id]);
      assert.equal(await state(id), 'running');
      const notPaused = await d.docker(['unpause', id]);
      assert.notEqual(notPaused.code, 0);
      assert.match(notPaused.stderr, /is not paused/);
      // rm -f of a paused container works too.
      await d.dockerOk(['pause', id]);
      await d.dockerOk(['rm', '-f', id]);
      await assertNoLeftovers(id);
    });

    it('a paused container cannot be started, and kill takes it', async () => {
      const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
      await d.dockerOk(['pause', id]);
      const r = await d.docker(['start', id]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /cannot start a paused container, try unpause instead/);
      await d.dockerOk(['kill', id]);
      const c = await inspect(d, id);
      assert.equal(c.State.Status, 'exited');
      assert.equal(c.State.ExitCode, 137);
      await assertNoLeftovers(id);
      await d.dockerOk(['rm', id]);
    });

    it('rename', async () => {
      const id = await d.dockerOk(['create', '--name', 'before-name', IMG, 'true']);
      await d.dockerOk(['rename', 'before-name', 'after-name']);
      assert.equal((await inspect(d, id)).Name, '/after-name');
      assert.equal((await d.docker(['inspect', 'before-name'])).code, 1);
      await d.dockerOk(['create', '--name', 'taken', IMG, 'true']);
      const r = await d.docker(['rename', 'after-name', 'taken']);
      assert.notEqual(r.code, 0);
      // moby's words (compose's recreate matches them), status 409.
      assert.match(r.stderr, /Error response from daemon: Error when allocating new name: Conflict\. The container name "\/taken" is already in use by container/);
      await d.dockerOk(['rm', 'after-name', 'taken']);
    });

    it('top shows the container processes', async () => {
      const id = await d.dockerOk(['run', '-d', IMG, 'sleep', '4242']);
      const out = await d.dockerOk(['top', id]);
      const lines = out.split('\n');
      assert.match(lines[0]!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
      assert.equal(lines.length, 2, out);
      assert.match(lines[1]!, /sleep 4242$/);
      assert.match(await d.dockerOk(['top', id, '-o', 'pid,comm']), /^PID\s+COMMAND\n\d+\s+sleep$/);
      await d.dockerOk(['rm', '-f', id]);
      const stopped = await d.dockerOk(['create', IMG, 'true']);
      const r = await d.docker(['top', stopped]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /is not running/);
      await d.dockerOk(['rm', stopped]);
    });

    it('wait returns the exit code, at once for an exited container', async () => {
      const id = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'sleep 0.5; exit 4']);
      assert.equal(await d.dockerOk(['wait', id]), '4');
      assert.equal(await d.dockerOk(['wait', id]), '4');
      await d.dockerOk(['rm', id]);
    });
  });

  describe('remove and prune', () => {
    it('rm refuses a running container without -f, rm -f kills and removes it', async () => {
      const id = await d.dockerOk(['run', '-d', '--name', 'busy', IMG, 'sleep', '1000']);
      const r = await d.docker(['rm', 'busy']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot remove container "\/busy": container is running: stop the container before removing or force remove/);
      assert.equal(await d.dockerOk(['rm', '-f', 'busy']), 'busy');
      assert.equal(await d.dockerOk(['ps', '-aq', '--filter', `id=${id}`]), '');
      await assertNoLeftovers(id);
    });

    it('rm -v removes anonymous volumes, not named ones', async () => {
      const id = await d.dockerOk(['run', '-d', '-v', '/anon', '-v', 'named-kept:/named', IMG, 'true']);
      await d.dockerOk(['wait', id]);
      const anon = (await inspect(d, id)).Mounts.find((m) => m.Destination === '/anon')!.Name!;
      assert.match(anon, /^[0-9a-f]{64}$/);
      assert.equal(await d.dockerOk(['volume', 'ls', '-q', '--filter', `name=${anon}`]), anon);
      await d.dockerOk(['rm', '-v', id]);
      assert.equal(await d.dockerOk(['volume', 'ls', '-q', '--filter', `name=${anon}`]), '');
      assert.equal(await d.dockerOk(['volume', 'ls', '-q', '--filter', 'name=named-kept']), 'named-kept');
      await d.dockerOk(['volume', 'rm', 'named-kept']);
    });

    it('rm without -v keeps anonymous volumes', async () => {
      const id = await d.dockerOk(['create', '-v', '/anon', IMG, 'true']);
      const anon = (await inspect(d, id)).Mounts[0]!.Name!;
      await d.dockerOk(['rm', id]);
      assert.equal(await d.dockerOk(['volume', 'ls', '-q', '--filter', `name=${anon}`]), anon);
      await d.dockerOk(['volume', 'rm', anon]);
    });

    it('container prune -f removes stopped containers only', async () => {
      const running = await d.dockerOk(['run', '-d', IMG, 'sleep', '1000']);
      const exited = await d.dockerOk(['run', '-d', IMG, 'true']);
      const created = await d.dockerOk(['create', IMG, 'true']);
      await d.dockerOk(['wait', exited]);
      const out = await d.dockerOk(['container', 'prune', '-f']);
      assert.match(out, /^Deleted Containers:\n/);
      assert.ok(out.includes(exited) && out.includes(created), out);
      assert.ok(!out.includes(running), out);
      assert.equal(await d.dockerOk(['ps', '-aq', '--no-trunc']), running);
      await d.dockerOk(['rm', '-f', running]);
    });

    it('container prune --filter label= and until= narrow it down', async () => {
      const keep = await d.dockerOk(['create', '-l', 'keep=yes', IMG, 'true']);
      const doomed = await d.dockerOk(['create', '-l', 'keep=no', IMG, 'true']);
      const out = await d.dockerOk(['container', 'prune', '-f', '--filter', 'label=keep=no']);
      assert.ok(out.includes(doomed) && !out.includes(keep), out);
      // Nothing was created more than an hour ago.
      const none = await d.dockerOk(['container', 'prune', '-f', '--filter', 'until=1h']);
      assert.ok(!none.includes(keep), none);
      assert.equal(await d.dockerOk(['ps', '-aq', '--no-trunc']), keep);
      await d.dockerOk(['rm', keep]);
    });
  });

  describe('restart policies and auto-remove', () => {
    it('--restart on-failure:2 restarts twice, then stays exited', async () => {
      const id = await d.dockerOk(['run', '-d', '--restart', 'on-failure:2', IMG, 'sh', '-c', 'echo attempt; exit 1']);
      const c = await eventually('two restarts', async () => {
        const x = await inspect(d, id);
        return x.RestartCount === 2 && x.State.Status === 'exited' ? x : undefined;
      });
      assert.equal(c.State.ExitCode, 1);
      assert.deepEqual(c.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
      assert.equal((await d.dockerOk(['logs', id])).split('\n').length, 3);
      // It stays there.
      await sleep(1000);
      assert.equal((await inspect(d, id)).RestartCount, 2);
      await d.dockerOk(['rm', id]);
    });

    it('--restart on-failure does not restart after exit 0', async () => {
      const id = await d.dockerOk(['run', '-d', '--restart', 'on-failure', IMG, 'true']);
      assert.equal(await d.dockerOk(['wait', id]), '0');
      await sleep(500);
      const c = await inspect(d, id);
      assert.equal(c.RestartCount, 0);
      assert.equal(c.State.Status, 'exited');
      await d.dockerOk(['rm', id]);
    });

    it('--restart always restarts after a clean exit, until stopped', async () => {
      const id = await d.dockerOk(['run', '-d', '--restart', 'always', IMG, 'sh', '-c', 'sleep 0.2; exit 0']);
      await eventually('a restart', async () => ((await inspect(d, id)).RestartCount >= 1 ? true : undefined));
      await d.dockerOk(['stop', '-t', '1', id]);
      const count = (await inspect(d, id)).RestartCount;
      await sleep(800);
      const c = await inspect(d, id);
      assert.equal(c.State.Status, 'exited');
      assert.equal(c.RestartCount, count);
      await d.dockerOk(['rm', id]);
    });

    it('a container waiting for its restart shows Restarting (and Running, as Docker), and rm -f takes it', async () => {
      const id = await d.dockerOk(['run', '-d', '--restart', 'on-failure:6', IMG, 'sh', '-c', 'exit 1']);
      const st = await eventually('the restarting state', async () => {
        const v = await d.dockerOk(['inspect', '-f', '{{json .State}}', id]);
        const x = JSON.parse(v) as { Status: string; Running: boolean; Restarting: boolean; Pid: number };
        return x.Status === 'restarting' ? x : undefined;
      });
      assert.equal(st.Running, true);
      assert.equal(st.Restarting, true);
      assert.equal(st.Pid, 0);
      assert.match(await d.dockerOk(['ps', '-a', '--filter', `id=${id}`, '--format', '{{.Status}}']), /^(Restarting \(1\)|Up )/);
      await d.dockerOk(['rm', '-f', id]);
      assert.equal(await d.dockerOk(['ps', '-aq', '--filter', `id=${id}`]), '');
      await assertNoLeftovers(id);
    });

    it('--rm removes the container after it exits, detached too', async () => {
      const id = await d.dockerOk(['run', '-d', '--rm', IMG, 'sh', '-c', 'sleep 0.3']);
      await eventually('auto-removal', async () => ((await d.dockerOk(['ps', '-aq', '--filter', `id=${id}`])) === '' ? true : undefined));
      await assertNoLeftovers(id);
    });

    it('--rm with a restart policy is refused', async () => {
      const r = await d.docker(['run', '--rm', '--restart', 'always', IMG, 'true']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /conflicting options: cannot specify both --restart and --rm|can.t create .AutoRemove. container with restart policy/i);
    });
  });

  describe('logs and attach', () => {
    let id: string;

    before(async () => {
      id = await d.dockerOk(['run', '-d', '--name', 'talker', IMG, 'sh', '-c', 'for i in 1 2 3 4; do echo out$i; done; sleep 0.3; echo err1 >&2; echo err2 >&2']);
      await d.dockerOk(['wait', id]);
    });

    it('logs keeps stdout and stderr apart', async () => {
      const r = await d.docker(['logs', id]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, 'out1\nout2\nout3\nout4\n');
      assert.equal(r.stderr, 'err1\nerr2\n');
    });

    it('logs --tail 2', async () => {
      const r = await d.docker(['logs', '--tail', '2', id]);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'err1\nerr2\n');
      // Docker tails the whole log, then picks the streams: stdout alone of the last 2 is nothing.
      const raw = await rawRequest(d.socket, 'GET', `/containers/${id}/logs?stdout=1&tail=2`);
      assert.equal(raw.status, 200);
      assert.equal(raw.body, '');
      const three = await rawRequest(d.socket, 'GET', `/containers/${id}/logs?stdout=1&tail=3`);
      assert.equal(three.body.slice(8), 'out4\n');
      const outOnly = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'for i in 1 2 3 4 5; do echo l$i; done']);
      await d.dockerOk(['wait', outOnly]);
      assert.equal(await d.dockerOk(['logs', '--tail', '2', outOnly]), 'l4\nl5');
      assert.equal(await d.dockerOk(['logs', '--tail', '0', outOnly]), '');
      await d.dockerOk(['rm', outOnly]);
    });

    it('logs -t prefixes RFC 3339 timestamps with nanoseconds', async () => {
      const out = await d.dockerOk(['logs', '-t', id]);
      const lines = out.split('\n');
      assert.equal(lines.length, 4);
      for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z out\d$/);
      const t = Date.parse(lines[0]!.split(' ')[0]!);
      assert.ok(Math.abs(Date.now() - t) < 5 * 60_000, lines[0]);
    });

    it('logs --since and --until', async () => {
      assert.equal((await d.dockerOk(['logs', '--since', '1h', id])).split('\n').length, 4);
      const future = new Date(Date.now() + 3600_000).toISOString();
      const r = await d.docker(['logs', '--since', future, id]);
      assert.equal(r.stdout + r.stderr, '');
      const past = await d.docker(['logs', '--until', '2000-01-01T00:00:00Z', id]);
      assert.equal(past.stdout + past.stderr, '');
    });

    it('logs -f follows until the container exits', async () => {
      const c = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'echo first; sleep 1; echo second; sleep 0.5; echo third']);
      const r = await d.docker(['logs', '-f', c], { timeoutMs: 20_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'first\nsecond\nthird\n');
      await d.dockerOk(['rm', c]);
    });

    it('logs of a TTY container come back as written', async () => {
      const c = await d.dockerOk(['run', '-d', '-t', IMG, 'sh', '-c', 'echo tty-out; echo tty-err >&2']);
      await d.dockerOk(['wait', c]);
      const r = await d.docker(['logs', c]);
      // A TTY has one stream: everything is on stdout, with the terminal's CRLF.
      assert.equal(r.stdout.replace(/\r\n/g, '\n'), 'tty-out\ntty-err\n');
      assert.equal(r.stderr, '');
      await d.dockerOk(['rm', c]);
    });

    it('attach to a running container sees new output and its exit code', async () => {
      const c = await d.dockerOk(['run', '-d', IMG, 'sh', '-c', 'echo before; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo after-1; echo after-2 >&2; exit 6']);
      await eventually('first output', async () => ((await d.dockerOk(['logs', c])) === 'before' ? true : undefined));
      const attaching = d.docker(['attach', c], { timeoutMs: 30_000 });
      // Nothing shows that the attach is in place: give it a moment before the output it must see.
      await sleep(1000);
      await d.dockerOk(['exec', c, 'touch', '/tmp/go']);
      const r = await attaching;
      assert.equal(r.code, 6, r.stderr);
      assert.equal(r.stdout, 'after-1\n');
      assert.equal(r.stderr, 'after-2\n');
      await d.dockerOk(['rm', c]);
    });

    it('attach to a stopped container is refused', async () => {
      const r = await d.docker(['attach', id]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /You cannot attach to a stopped container, start it first/);
    });
  });

  describe('exec', () => {
    let id: string;

    before(async () => {
      id = await d.dockerOk(['run', '-d', '--name', 'box', '-e', 'FROM_RUN=1', IMG, 'sleep', '1000']);
    });

    it('returns the exit code', async () => {
      assert.equal((await d.docker(['exec', id, 'sh', '-c', 'exit 5'])).code, 5);
      assert.equal((await d.docker(['exec', id, 'true'])).code, 0);
    });

    it('keeps stdout and stderr apart', async () => {
      const r = await d.docker(['exec', id, 'sh', '-c', 'echo o; echo e >&2']);
      assert.equal(r.stdout, 'o\n');
      assert.equal(r.stderr, 'e\n');
    });

    it('a missing binary gives 126 (an exec, unlike a run), Docker message, and leaves nothing running', async () => {
      const r = await d.docker(['exec', id, 'no-such-binary']);
      assert.equal(r.code, 126);
      // Docker writes this on the stdout stream (docker/cli#2025).
      assert.match(r.stdout + r.stderr, /OCI runtime exec failed: exec failed: unable to start container process: exec: "no-such-binary": executable file not found in \$PATH: unknown/);
      assert.doesNotMatch(r.stdout + r.stderr, /level=error/);
      // A process that writes to stderr in runc's log format is not mistaken for runc.
      const fake = await d.docker(['exec', id, 'sh', '-c', 'echo \'time="x" level=error msg="exec failed: mine"\' >&2; exit 3']);
      assert.equal(fake.code, 3);
      assert.equal(fake.stderr, 'time="x" level=error msg="exec failed: mine"\n');
      const procs = await d.dockerOk(['top', id, '-o', 'pid,comm']);
      assert.equal(procs.split('\n').length, 2, procs);
      assert.equal((await inspect(d, id)).State.Status, 'running');
    });

    it('-i passes stdin', async () => {
      const r = await d.docker(['exec', '-i', id, 'sh', '-c', 'cat; echo done'], { input: 'line1\nline2\n' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'line1\nline2\ndone\n');
    });

    it('-e, -w and -u', async () => {
      assert.equal(await d.dockerOk(['exec', '-e', 'FOO=bar', id, 'sh', '-c', 'echo $FOO $FROM_RUN']), 'bar 1');
      assert.equal(await d.dockerOk(['exec', '-w', '/etc', id, 'pwd']), '/etc');
      assert.equal(await d.dockerOk(['exec', '-u', '1000', id, 'id', '-u']), '1000');
      assert.equal(await d.dockerOk(['exec', '-u', 'app', id, 'sh', '-c', 'id -un; echo $HOME']), 'app\n/home/app');
    });

    it('-d runs in the background', async () => {
      assert.equal(await d.dockerOk(['exec', '-d', id, 'sh', '-c', 'sleep 0.5; touch /tmp/exec-done']), '');
      await eventually('the detached exec to finish', async () =>
        (await d.docker(['exec', id, 'test', '-f', '/tmp/exec-done'])).code === 0 ? true : undefined,
      );
    });

    it('on a stopped container is refused', async () => {
      const stopped = await d.dockerOk(['create', IMG, 'true']);
      const r = await d.docker(['exec', stopped, 'true']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`container ${stopped} is not running`));
      await d.dockerOk(['rm', stopped]);
    });

    it('on an unknown container says so', async () => {
      const r = await d.docker(['exec', 'nope-nope', 'true']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /No such container: nope-nope/);
    });

    it('is listed in ExecIDs while it runs', async () => {
      const p = d.docker(['exec', id, 'sleep', '1']);
      const ids = await eventually('an exec id', async () => {
        const v = await d.dockerOk(['inspect', '-f', '{{json .ExecIDs}}', id]);
        return v === 'null' ? undefined : (JSON.parse(v) as string[]);
      });
      assert.equal(ids.length, 1);
      assert.equal((await p).code, 0);
    });
  });
});
