import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { decodeRegistryAuth, isInsecure, parseChallenge, RegistryClient } from '../../src/images/registry-client.js';
import { NotFound } from '../../src/errors.js';

describe('registry client', () => {
  let server: Server;
  let port = 0;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: 'sha256:x' }, layers: [] }));
  const tokenRequests: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/token') {
        tokenRequests.push(`${req.headers.authorization ?? ''} ${url.searchParams.get('service')} ${url.searchParams.get('scope')}`);
        res.end(JSON.stringify({ token: 'tok' }));
        return;
      }
      if (req.headers.authorization !== 'Bearer tok') {
        res.writeHead(401, {
          'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="reg",scope="repository:team/app:pull"`,
          'Content-Type': 'application/json',
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
      if (url.pathname === '/v2/team/app/manifests/1') {
        res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
        res.end(manifest);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  it('follows the bearer challenge with basic credentials and fetches a manifest', async () => {
    const auth = decodeRegistryAuth(Buffer.from(JSON.stringify({ username: 'u', password: 'p' })).toString('base64url'));
    const c = new RegistryClient({ domain: `127.0.0.1:${port}`, path: 'team/app', tag: '1' }, auth, []);
    const m = await c.manifest('1');
    assert.equal(m.digest, `sha256:${createHash('sha256').update(manifest).digest('hex')}`);
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(tokenRequests, [`Basic ${Buffer.from('u:p').toString('base64')} reg repository:team/app:pull`]);
  });

  it('turns MANIFEST_UNKNOWN into Docker’s 404 text', async () => {
    const c = new RegistryClient({ domain: `127.0.0.1:${port}`, path: 'team/app', tag: 'nope' }, undefined, []);
    await assert.rejects(c.manifest('nope'), (e: unknown) => {
      assert.ok(e instanceof NotFound);
      assert.equal(e.message, `manifest for 127.0.0.1:${port}/team/app:nope not found: manifest unknown: manifest unknown`);
      return true;
    });
  });

  it('parses challenges and decides plain HTTP', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/busybox:pull',
    });
    assert.ok(isInsecure('localhost:5000', []));
    assert.ok(isInsecure('127.0.0.5:80', []));
    assert.ok(isInsecure('[::1]:5000', []));
    assert.ok(!isInsecure('registry.example.com', []));
    assert.ok(isInsecure('registry.example.com:5000', ['registry.example.com:5000']));
    assert.ok(isInsecure('10.1.2.3:5000', ['10.0.0.0/8']));
    assert.ok(!isInsecure('11.1.2.3:5000', ['10.0.0.0/8']));
  });
});
