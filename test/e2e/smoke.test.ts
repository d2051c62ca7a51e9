/**
 * Smoke test: the daemon starts in a throwaway netns, speaks the Engine API the stock docker CLI
 * expects (version negotiation, ping headers, errors), and comes back after being killed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startDaemon, type TestDaemon } from './harness.js';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function raw(socket: string, method: string, path: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

describe('smoke', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ loadTestImage: false });
  });

  after(async () => {
    await d?.cleanup();
  });

  it('docker version shows the arca server and its API version', async () => {
    const out = await d.dockerOk(['version', '--format', '{{json .Server}}']);
    const server = JSON.parse(out) as { Platform?: { Name?: string }; ApiVersion?: string; Os?: string };
    assert.equal(server.Platform?.Name, 'arca');
    assert.match(server.ApiVersion ?? '', /^1\.[0-9]+$/);
    assert.equal(server.Os, 'linux');
  });

  it('docker info answers', async () => {
    const out = await d.dockerOk(['info', '--format', '{{json .}}']);
    const info = JSON.parse(out) as { ServerErrors?: string[]; OSType?: string };
    assert.deepEqual(info.ServerErrors ?? [], []);
    assert.equal(info.OSType, 'linux');
  });

  it('serves unversioned and versioned paths', async () => {
    const plain = await raw(d.socket, 'GET', '/version');
    assert.equal(plain.status, 200);
    const v = JSON.parse(plain.body) as { ApiVersion: string; MinAPIVersion: string };
    const versioned = await raw(d.socket, 'GET', `/v${v.ApiVersion}/version`);
    assert.equal(versioned.status, 200);
    const oldest = await raw(d.socket, 'GET', `/v${v.MinAPIVersion}/version`);
    assert.equal(oldest.status, 200);
  });

  it('refuses a client version that is too new, in Docker words', async () => {
    const r = await raw(d.socket, 'GET', '/v1.99/version');
    assert.equal(r.status, 400);
    const body = JSON.parse(r.body) as { message: string };
    assert.equal(body.message, 'client version 1.99 is too new. Maximum supported API version is 1.51');
  });

  it('HEAD /_ping carries the API headers and no body', async () => {
    const r = await raw(d.socket, 'HEAD', '/_ping');
    assert.equal(r.status, 200);
    assert.equal(r.headers['api-version'], '1.51');
    assert.equal(r.headers['ostype'], 'linux');
    assert.equal(r.body, '');
    const g = await raw(d.socket, 'GET', '/_ping');
    assert.equal(g.status, 200);
    assert.equal(g.body, 'OK');
  });

  it('answers 404 for an unknown path, versioned or not', async () => {
    for (const path of ['/no/such/thing', '/v1.51/no/such/thing']) {
      const r = await raw(d.socket, 'GET', path);
      assert.equal(r.status, 404, path);
      assert.equal(typeof (JSON.parse(r.body) as { message: unknown }).message, 'string');
    }
  });

  it('comes back on the same root after SIGKILL', async () => {
    const before = d.pid();
    await d.restart({ signal: 'SIGKILL' });
    assert.notEqual(d.pid(), before);
    const out = await d.dockerOk(['version', '--format', '{{.Server.Platform.Name}}']);
    assert.equal(out, 'arca');
  });

  it('comes back after SIGTERM', async () => {
    const before = d.pid();
    await d.restart();
    assert.notEqual(d.pid(), before);
    await d.dockerOk(['info', '--format', '{{.OSType}}']);
  });
});
