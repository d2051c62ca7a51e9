/**
 * Detach keys with the real docker CLI behind a pty (util-linux `script`): `run -it`, `attach`
 * and `exec -it` leave on ctrl-p ctrl-q, on `--detach-keys` and on the config file's
 * `detachKeys`, and the container (or exec'd process) keeps running; Docker's errors for keys it
 * cannot parse; and the daemon's own detection for API clients that write the keys raw.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, inspect, rawRequest, sleep } from './containers-support.js';

const IMG = TEST_IMAGE;
const haveScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
const PROMPT = /# (\x1b\[6n)?$/;

/**
 * Drives a command in a pty; each step waits for `expect` in the output, then types `keys` one
 * at a time (the CLI only sees a detach key in a read of its own, as a person types them).
 */
function typeInPty(command: string, env: NodeJS.ProcessEnv, steps: Array<{ expect: RegExp; keys: string[] }>, timeoutMs = 20_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...env, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    let typing = false;
    const advance = async (): Promise<void> => {
      if (typing) return;
      typing = true;
      while (step < steps.length && steps[step]!.expect.test(output)) {
        for (const k of steps[step]!.keys) {
          child.stdin.write(k);
          await sleep(150);
        }
        step++;
      }
      typing = false;
    };
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString('utf8');
      void advance();
    });
    child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.stdin.on('error', () => {});
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
    void advance();
  });
}

/** A hijacked attach or exec start on the raw socket, as an API client without the CLI's key handling. */
function hijack(socket: string, path: string, body?: string): Promise<{ write(s: string): void; output(): string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    let upgraded = false;
    let markClosed = (): void => {};
    const closed = new Promise<void>((r) => (markClosed = r));
    s.on('close', () => markClosed());
    s.on('end', () => markClosed());
    s.on('error', reject);
    s.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.slice(0, i);
        if (!/^HTTP\/1\.1 101/.test(head)) return reject(new Error(`no upgrade: ${buf}`));
        upgraded = true;
        buf = buf.slice(i + 4);
        resolve({ write: (x) => s.write(x), output: () => buf, closed });
      }
    });
    const extra = body ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '';
    s.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${extra}\r\n${body ?? ''}`);
  });
}

describe('containers: detach keys', { skip: haveScript ? false : 'util-linux script is not installed' }, () => {
  let d: TestDaemon;
  let configDir: string;

  before(async () => {
    d = await startDaemon();
    configDir = mkdtempSync(join(tmpdir(), 'arca-detach-cfg-'));
    writeFileSync(join(configDir, 'config.json'), JSON.stringify({ detachKeys: 'ctrl-e,e' }));
  });

  after(async () => {
    await d?.cleanup();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  const status = async (ref: string): Promise<string> => (await inspect(d, ref)).State.Status;

  it('docker run -it --detach-keys: leaves the container running, exit 0', async () => {
    const r = await typeInPty(`docker run -it --name dk1 --detach-keys ctrl-a,x ${IMG} sh`, d.env, [{ expect: PROMPT, keys: ['\x01', 'x'] }]);
    assert.equal(r.code, 0, r.output);
    assert.equal(await status('dk1'), 'running');
  });

  it('docker attach: ctrl-p ctrl-q by default, "read escape sequence"; the config file\'s detachKeys', async () => {
    // attach shows nothing until there is output: type a command first.
    const plain = await typeInPty('docker attach dk1', d.env, [
      { expect: /^/, keys: ['echo one-$((1+1))\n'] },
      { expect: /one-2/, keys: ['\x10', '\x11'] },
    ]);
    assert.equal(plain.code, 1, plain.output);
    assert.match(plain.output, /read escape sequence/);
    assert.equal(await status('dk1'), 'running');

    const cfg = await typeInPty('docker attach dk1', { ...d.env, DOCKER_CONFIG: configDir }, [
      { expect: /^/, keys: ['echo two-$((1+2))\n'] },
      // ctrl-p ctrl-q are ordinary keys now.
      { expect: /two-3/, keys: ['\x10', '\x11', 'echo still-$((2+2))\n'] },
      { expect: /still-4/, keys: ['\x05', 'e'] },
    ]);
    assert.equal(cfg.code, 1, cfg.output);
    assert.match(cfg.output, /read escape sequence/);
    assert.equal(await status('dk1'), 'running');
  });

  it('docker exec -it --detach-keys: the exec\'d process keeps running', async () => {
    const r = await typeInPty('docker exec -it --detach-keys ctrl-b,b dk1 sh', d.env, [
      { expect: PROMPT, keys: ['sleep 4242\n'] },
      { expect: /sleep 4242/, keys: ['\x02', 'b'] },
    ]);
    assert.match(r.output, /read escape sequence/);
    await eventually('the exec\'d sleep', async () => ((await d.dockerOk(['top', 'dk1'])).includes('sleep 4242') ? true : undefined), 5000);
    assert.equal(await status('dk1'), 'running');
  });

  it('keys Docker cannot parse: its errors, for attach (400) and exec (500)', async () => {
    const r = await typeInPty('docker attach --detach-keys ctrl-A dk1', d.env, []);
    assert.equal(r.code, 1, r.output);
    // The CLI reports the daemon's refusal of the upgrade as it does with dockerd.
    assert.match(r.output, /unable to upgrade to tcp, received 400/);
    const api = await rawRequest(d.socket, 'POST', '/v1.51/containers/dk1/attach?stream=1&stdout=1&detachKeys=ctrl-%3F');
    assert.equal(api.status, 400, api.body);
    assert.equal(JSON.parse(api.body).message, 'Invalid detach keys (ctrl-?) provided');
    const ex = await rawRequest(d.socket, 'POST', '/v1.51/containers/dk1/exec', JSON.stringify({ Cmd: ['true'], DetachKeys: 'ctrl-p,,q' }));
    assert.equal(ex.status, 500, ex.body);
    assert.equal(JSON.parse(ex.body).message, 'Invalid escape keys (ctrl-p,,q) provided');
    assert.equal(await status('dk1'), 'running');
  });

  it('the daemon detects the keys itself for API clients (attach and exec start), even written in one piece', async () => {
    const a = await hijack(d.socket, '/v1.51/containers/dk1/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-a,x');
    a.write('echo srv-$((3+4))\n');
    await eventually('the echo', () => (a.output().includes('srv-7') ? true : undefined), 5000);
    // A broken sequence reaches the container as typed (the shell echoes ^A and y back).
    a.write('\x01y\x15');
    a.write('\x01x');
    await Promise.race([a.closed, sleep(5000).then(() => assert.fail('the daemon did not end the session'))]);
    assert.equal(await status('dk1'), 'running');

    const created = await rawRequest(d.socket, 'POST', '/v1.51/containers/dk1/exec', JSON.stringify({ Cmd: ['sh'], AttachStdin: true, AttachStdout: true, Tty: true }));
    assert.equal(created.status, 201, created.body);
    const id = JSON.parse(created.body).Id as string;
    const x = await hijack(d.socket, `/v1.51/exec/${id}/start`, JSON.stringify({ Tty: true }));
    x.write('sleep 4343\n');
    await eventually('the exec\'d sleep', async () => ((await d.dockerOk(['top', 'dk1'])).includes('sleep 4343') ? true : undefined), 5000);
    x.write('\x10\x11');
    await Promise.race([x.closed, sleep(5000).then(() => assert.fail('the daemon did not end the exec session'))]);
    const ins = JSON.parse((await rawRequest(d.socket, 'GET', `/v1.51/exec/${id}/json`)).body);
    assert.equal(ins.Running, true, 'the exec keeps running after the client detached');
    assert.ok((await d.dockerOk(['top', 'dk1'])).includes('sleep 4343'));
    await d.dockerOk(['rm', '-f', 'dk1']);
  });
});
