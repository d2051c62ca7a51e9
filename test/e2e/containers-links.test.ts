/**
 * Legacy links on the default bridge with the docker CLI: Docker's link variables in the linking
 * container, /etc/hosts, inspect's `/target:/linker/alias`, `docker rm --link` and its errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { rawRequest } from './containers-support.js';

const IMG = TEST_IMAGE;

describe('containers: legacy links', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  it('--link name:alias sets Docker\'s variables and /etc/hosts in the linking container', async () => {
    await d.dockerOk(['run', '-d', '--name', 'db', '-e', 'PASSWORD=s3cret', '--expose', '5432', '--expose', '53/udp', IMG, 'sleep', '600']);
    const ip = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'db']);
    const env = (await d.dockerOk(['run', '--rm', '--name', 'web', '--link', 'db:my-db', '-e', 'MY_DB_ENV_PASSWORD=mine', IMG, 'env'])).split('\n');
    for (const line of [
      `MY_DB_PORT=tcp://${ip}:5432`,
      `MY_DB_PORT_5432_TCP=tcp://${ip}:5432`,
      `MY_DB_PORT_5432_TCP_ADDR=${ip}`,
      'MY_DB_PORT_5432_TCP_PORT=5432',
      'MY_DB_PORT_5432_TCP_PROTO=tcp',
      `MY_DB_PORT_53_UDP=udp://${ip}:53`,
      `MY_DB_PORT_53_UDP_ADDR=${ip}`,
      'MY_DB_PORT_53_UDP_PORT=53',
      'MY_DB_PORT_53_UDP_PROTO=udp',
      'MY_DB_NAME=/web/my-db',
      // The container's own -e wins over a link variable (moby).
      'MY_DB_ENV_PASSWORD=mine',
    ]) {
      assert.ok(env.includes(line), `${line} in\n${env.join('\n')}`);
    }
    assert.ok(!env.some((e) => e.startsWith('MY_DB_ENV_PATH=') || e.startsWith('MY_DB_ENV_HOME=')), env.join('\n'));
    // A link without alias is named after the container.
    const plain = (await d.dockerOk(['run', '--rm', '--name', 'web2', '--link', 'db', IMG, 'env'])).split('\n');
    assert.ok(plain.includes('DB_NAME=/web2/db') && plain.includes('DB_ENV_PASSWORD=s3cret'), plain.join('\n'));
    // Not on the default bridge: no link variables.
    await d.dockerOk(['network', 'create', 'n-links']);
    await d.dockerOk(['run', '-d', '--name', 'db-u', '--network', 'n-links', '--expose', '80', IMG, 'sleep', '600']);
    const user = await d.dockerOk(['run', '--rm', '--network', 'n-links', '--link', 'db-u:x', IMG, 'env']);
    assert.doesNotMatch(user, /^X_/m);
    await d.dockerOk(['rm', '-f', 'db-u']);
    await d.dockerOk(['network', 'rm', 'n-links']);
  });

  it('inspect shows /target:/linker/alias; docker rm --link removes it; Docker\'s errors', async () => {
    await d.dockerOk(['run', '-d', '--name', 'app', '--link', 'db:my-db', IMG, 'sleep', '600']);
    assert.equal(await d.dockerOk(['inspect', '-f', '{{json .HostConfig.Links}}', 'app']), '["/db:/app/my-db"]');
    const ip = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'db']);
    assert.match(await d.dockerOk(['exec', 'app', 'cat', '/etc/hosts']), new RegExp(`^${ip.replace(/\./g, '\\.')}\\tmy-db \\w+ db$`, 'm'));

    const conflict = await d.docker(['rm', '--link', 'db']);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /Error response from daemon: Conflict, cannot remove the default link name of the container/);
    const unknown = await d.docker(['rm', '--link', '/app/nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No such container: \/?app\/nope/);

    assert.equal(await d.dockerOk(['rm', '--link', '/app/my-db']), '/app/my-db');
    assert.equal(await d.dockerOk(['inspect', '-f', '{{json .HostConfig.Links}}', 'app']), 'null');
    assert.doesNotMatch(await d.dockerOk(['exec', 'app', 'cat', '/etc/hosts']), /my-db/, 'the running container\'s /etc/hosts follows');
    assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.Status}}', 'db']), 'running', 'the linked container is untouched');

    // The raw API form, as docker-py sends it.
    await d.dockerOk(['create', '--name', 'app2', '--link', 'db:other', IMG, 'true']);
    const r = await rawRequest(d.socket, 'DELETE', '/v1.51/containers/app2/other?link=1');
    assert.equal(r.status, 204, r.body);
    assert.equal(await d.dockerOk(['inspect', '-f', '{{json .HostConfig.Links}}', 'app2']), 'null');
    await d.dockerOk(['rm', '-f', 'app', 'app2']);
  });

  it('a linking container does not start while its linked container is stopped (Docker\'s text)', async () => {
    await d.dockerOk(['create', '--name', 'web3', '--link', 'db:my-db', IMG, 'sleep', '600']);
    await d.dockerOk(['stop', '-t', '0', 'db']);
    const r = await d.docker(['start', 'web3']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Cannot link to a non running container: \/db AS \/web3\/my-db/);
    assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.Status}}', 'web3']), 'created');
    await d.dockerOk(['start', 'db']);
    await d.dockerOk(['start', 'web3']);
    assert.match(await d.dockerOk(['exec', 'web3', 'sh', '-c', 'echo $MY_DB_NAME']), /^\/web3\/my-db$/);
    await d.dockerOk(['rm', '-f', 'web3', 'db']);
  });
});
