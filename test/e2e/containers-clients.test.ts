/**
 * Smoke tests with the other clients people point at a Docker socket: docker-py (Debian's
 * python3-docker) and docker-compose 1.29 (which is built on docker-py).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { COMPOSE, exec, PYTHON, skipWithoutCompose, skipWithoutDockerPy, type Run } from './docker-clients.js';

describe('containers: docker-py and docker-compose', () => {
  let d: TestDaemon;
  let dir: string;

  before(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'arca-compose-'));
  });

  after(async () => {
    await d?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('docker-py runs, execs, stops and removes containers', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
img = sys.argv[2]
print(repr(c.containers.run(img, "echo hi", remove=True)))
try:
    c.containers.run(img, ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
except docker.errors.ContainerError as e:
    print("ContainerError", e.exit_status)
ct = c.containers.run(img, "sleep 1000", detach=True, name="py1", labels={"via": "py"})
ct.reload()
print(ct.status, ct.name, ct.labels["via"])
r = ct.exec_run(["sh", "-c", "echo ex; exit 3"])
print(r.exit_code, repr(r.output))
print([x.name for x in c.containers.list(filters={"label": "via=py"})])
ct.stop(timeout=1)
ct.reload()
print(ct.status, ct.attrs["State"]["ExitCode"])
ct.remove()
print(len(c.containers.list(all=True)))
`;
    const r = await exec(PYTHON, ['-c', script, `unix://${d.socket}`, TEST_IMAGE], d.env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      "b'hi\\n'",
      'ContainerError 3',
      'running py1 py',
      "3 b'ex\\n'",
      "['py1']",
      'exited 137',
      '0',
    ]);
  });

  it('docker-compose up -d, exec, logs, down', { skip: skipWithoutCompose }, async () => {
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      [
        'version: "2.4"',
        'services:',
        '  app:',
        `    image: ${TEST_IMAGE}`,
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; echo compose-up; while true; do sleep 0.2; done"]',
        '    environment:',
        '      GREETING: hello',
        '',
      ].join('\n'),
    );
    const compose = (...args: string[]): Promise<Run> => exec(COMPOSE, ['-p', 'arcasmoke', ...args], d.env, dir);
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.stderr);
    const ps = await d.dockerOk(['ps', '--filter', 'label=com.docker.compose.project=arcasmoke', '--format', '{{.Names}} {{.State}}']);
    assert.equal(ps, 'arcasmoke_app_1 running');
    const ex = await compose('exec', '-T', 'app', 'sh', '-c', 'echo $GREETING');
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(ex.stdout.trim(), 'hello');
    const logs = await compose('logs', '--no-color');
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /app_1\s+\| compose-up/);
    const down = await compose('down');
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await d.dockerOk(['ps', '-aq']), '');
  });
});
