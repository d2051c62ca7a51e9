import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, statSync, symlinkSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBind, parseCreateRequest, validateName } from '../../src/containers/create-request.js';
import { forEmbeddedResolver, mergeEnv, renderHosts, renderResolvConf, resolveUser, usesEmbeddedResolver } from '../../src/containers/etc-files.js';
import { frame, parseLogLine } from '../../src/containers/log-file.js';
import { linkEnvironment, linksView, withoutLink } from '../../src/containers/legacy-links.js';
import type { ContainerRecord } from '../../src/containers/container-record.js';
import { NotFound, SystemError } from '../../src/errors.js';
import { capabilitySet, DEFAULT_CAPS } from '../../src/runtime/oci-spec.js';
import { parseSignal } from '../../src/containers/container-manager.js';
import { cleanRuntimeMessage } from '../../src/runtime/conmon-runtime.js';
import { InvalidParameter } from '../../src/errors.js';
import { commandText } from '../../src/containers/container-view.js';
import { ensureWorkingDir } from '../../src/containers/working-dir.js';

describe('container names', () => {
  it('accepts Docker names and strips the leading slash', () => {
    assert.equal(validateName('web-1.a_b'), 'web-1.a_b');
    assert.equal(validateName('/web'), 'web');
  });
  it('refuses names Docker refuses, with its message', () => {
    for (const bad of ['a b', '-x', 'x', 'é']) {
      assert.throws(() => validateName(bad), (e: Error) => e instanceof InvalidParameter && /Invalid container name/.test(e.message));
    }
  });
});

describe('create request', () => {
  it('needs an image', () => {
    assert.throws(() => parseCreateRequest({}), InvalidParameter);
  });
  it('rejects wrong types', () => {
    assert.throws(() => parseCreateRequest({ Image: 'x', Cmd: 5 }), InvalidParameter);
    assert.throws(() => parseCreateRequest({ Image: 'x', Tty: 'yes' }), InvalidParameter);
    assert.throws(() => parseCreateRequest({ Image: 'x', HostConfig: [] }), InvalidParameter);
  });
  it('takes a bare string Cmd as Docker does', () => {
    assert.deepEqual(parseCreateRequest({ Image: 'x', Cmd: 'ls' }).config.Cmd, ['ls']);
  });
  it('checks restart policies', () => {
    assert.throws(() => parseCreateRequest({ Image: 'x', HostConfig: { RestartPolicy: { Name: 'bogus' } } }), /unknown policy 'bogus'/);
    assert.throws(
      () => parseCreateRequest({ Image: 'x', HostConfig: { RestartPolicy: { Name: 'always', MaximumRetryCount: 2 } } }),
      /only be used with 'on-failure'/,
    );
    assert.throws(
      () => parseCreateRequest({ Image: 'x', HostConfig: { AutoRemove: true, RestartPolicy: { Name: 'always' } } }),
      /AutoRemove/,
    );
    const r = parseCreateRequest({ Image: 'x', HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } } });
    assert.deepEqual(r.hostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  });
  it('defaults the network mode to bridge and keeps endpoints', () => {
    const r = parseCreateRequest({ Image: 'x', NetworkingConfig: { EndpointsConfig: { n1: {}, n2: {} } } });
    assert.equal(r.hostConfig.NetworkMode, 'bridge');
    assert.deepEqual(Object.keys(r.endpoints), ['n1', 'n2']);
  });
  it('refuses a relative working directory and tiny memory limits', () => {
    assert.throws(() => parseCreateRequest({ Image: 'x', WorkingDir: 'rel' }), /absolute path/);
    assert.throws(() => parseCreateRequest({ Image: 'x', HostConfig: { Memory: 1024 } }), /Minimum memory/);
  });
});

describe('-v specs', () => {
  it('parses binds, named and anonymous volumes', () => {
    assert.deepEqual(parseBind('/h:/c:ro'), { source: '/h', target: '/c', readOnly: true, propagation: '', isVolume: false });
    assert.equal(parseBind('data:/c').isVolume, true);
    assert.deepEqual(parseBind('/c'), { source: '', target: '/c', readOnly: false, propagation: '', isVolume: false });
  });
  it('refuses relative targets, bad modes and bad volume names', () => {
    assert.throws(() => parseBind('/h:c'), InvalidParameter);
    assert.throws(() => parseBind('/h:/c:bogus'), /invalid mode/);
    assert.throws(() => parseBind('a b:/c'), /invalid characters/);
  });
});

describe('etc files', () => {
  it('renders /etc/hosts with extra hosts and the container itself', () => {
    const text = renderHosts(['172.18.0.2\tabc'], ['db:10.0.0.5', 'v6:[::1]']);
    assert.match(text, /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(text, /^10\.0\.0\.5\tdb$/m);
    assert.match(text, /^::1\tv6$/m);
    assert.match(text, /172\.18\.0\.2\tabc\n$/);
  });
  it('drops loopback resolvers and applies --dns options', () => {
    const host = 'nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp\noptions edns0\n';
    assert.equal(renderResolvConf(host, { dns: [], search: [], options: [], keepLoopback: false }), 'nameserver 10.1.1.1\nsearch corp\noptions edns0\n');
    assert.equal(
      renderResolvConf(host, { dns: ['1.2.3.4'], search: ['a.b'], options: ['ndots:2'], keepLoopback: false }),
      'nameserver 1.2.3.4\nsearch a.b\noptions ndots:2\n',
    );
    assert.match(renderResolvConf(host, { dns: [], search: [], options: [], keepLoopback: true }), /127\.0\.0\.53/);
  });
  it('resolves -u against the image passwd and group files', () => {
    const root = mkdtempSync(join(tmpdir(), 'arca-user-'));
    try {
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
      writeFileSync(join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\nwheel:x:10:app\n');
      assert.deepEqual(resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
      assert.deepEqual(resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [10], home: '/home/app' });
      assert.deepEqual(resolveUser(root, '1000:10'), { uid: 1000, gid: 10, additionalGids: [], home: '/home/app' });
      assert.equal(resolveUser(root, '4242').uid, 4242);
      assert.throws(() => resolveUser(root, 'nobody2'), /unable to find user nobody2/);
      assert.throws(() => resolveUser(root, 'app:nogroup'), /unable to find group nogroup/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  it('merges environments, later values winning', () => {
    assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['B=3', 'C=4']), ['A=1', 'B=3', 'C=4']);
  });
});

describe('k8s-file log lines', () => {
  it('parses full and partial lines', () => {
    const full = parseLogLine(Buffer.from('2026-11-23T15:42:10.128845139+00:00 stdout F hello'))!;
    assert.equal(full.stream, 'stdout');
    assert.equal(full.data.toString(), 'hello\n');
    assert.equal(full.time, '2026-11-23T15:42:10.128845139Z');
    assert.ok(Math.abs(full.epoch - Date.parse('2026-11-23T15:42:10.128Z') / 1000) < 0.01);
    const part = parseLogLine(Buffer.from('2026-11-23T15:42:10.1+00:00 stderr P abc'))!;
    assert.equal(part.stream, 'stderr');
    assert.equal(part.data.toString(), 'abc');
    assert.equal(parseLogLine(Buffer.from('garbage')), undefined);
  });
  it('frames stdout and stderr as Docker multiplexes them', () => {
    const f = frame(2, Buffer.from('xy'));
    assert.deepEqual([...f], [2, 0, 0, 0, 0, 0, 0, 2, 0x78, 0x79]);
  });
});

describe('capabilities and signals', () => {
  it("starts from Docker's default set, NET_RAW included", () => {
    assert.ok(DEFAULT_CAPS.includes('CAP_NET_RAW'));
    const caps = capabilitySet(['net_admin'], ['NET_RAW'], false);
    assert.ok(caps.includes('CAP_NET_ADMIN'));
    assert.ok(!caps.includes('CAP_NET_RAW'));
    assert.deepEqual(capabilitySet(null, ['ALL'], false), []);
    assert.ok(capabilitySet(null, null, true).includes('CAP_SYS_ADMIN'));
  });
  it('parses signal names and numbers', () => {
    assert.equal(parseSignal('SIGTERM'), 'TERM');
    assert.equal(parseSignal('usr1'), 'USR1');
    assert.equal(parseSignal('9'), '9');
    assert.throws(() => parseSignal('NOPE'), /Invalid signal/);
  });
  it("keeps only runc's message text", () => {
    assert.equal(
      cleanRuntimeMessage('time="x" level=error msg="exec failed: \\"foo\\" not found"\n'),
      'exec failed: "foo" not found',
    );
  });
});

describe('resolv.conf turned over to the embedded resolver (network connect)', () => {
  it('swaps the nameservers for 127.0.0.11, keeps search and options, adds ndots:0 unless set', () => {
    assert.equal(forEmbeddedResolver('# host\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch a.example b.example\noptions timeout:2\n'), 'nameserver 127.0.0.11\nsearch a.example b.example\noptions timeout:2 ndots:0\n');
    assert.equal(forEmbeddedResolver('nameserver 10.0.0.2\noptions ndots:3\n'), 'nameserver 127.0.0.11\noptions ndots:3\n');
    assert.equal(forEmbeddedResolver('nameserver 10.0.0.2\noptions ndots:x\n'), 'nameserver 127.0.0.11\noptions ndots:0\n');
    assert.equal(forEmbeddedResolver(''), 'nameserver 127.0.0.11\noptions ndots:0\n');
  });

  it('tells a file that already uses it', () => {
    assert.equal(usesEmbeddedResolver('nameserver 127.0.0.11\noptions ndots:0\n'), true);
    assert.equal(usesEmbeddedResolver('nameserver 127.0.0.11\nnameserver 8.8.8.8\n'), false);
    assert.equal(usesEmbeddedResolver('search x\n'), false);
  });
});

describe('legacy links (--link on the default bridge)', () => {
  it('sets moby\'s variables: first port TCP-first, per-port, runs of ports, name, env without HOME and PATH', () => {
    const env = linkEnvironment('/web/my-db', '172.17.0.3', ['PATH=/bin', 'HOME=/root', 'PASSWORD=a=b', 'HOSTNAME=x', 'BROKEN'], ['53/udp', '8081/tcp', '8080/tcp', '5432/tcp']);
    assert.deepEqual(env, [
      'MY_DB_PORT=tcp://172.17.0.3:5432',
      'MY_DB_PORT_5432_TCP=tcp://172.17.0.3:5432',
      'MY_DB_PORT_5432_TCP_ADDR=172.17.0.3',
      'MY_DB_PORT_5432_TCP_PORT=5432',
      'MY_DB_PORT_5432_TCP_PROTO=tcp',
      'MY_DB_PORT_8080_TCP=tcp://172.17.0.3:8080',
      'MY_DB_PORT_8080_TCP_ADDR=172.17.0.3',
      'MY_DB_PORT_8080_TCP_PORT=8080',
      'MY_DB_PORT_8080_TCP_PROTO=tcp',
      'MY_DB_PORT_8081_TCP=tcp://172.17.0.3:8081',
      'MY_DB_PORT_8081_TCP_ADDR=172.17.0.3',
      'MY_DB_PORT_8081_TCP_PORT=8081',
      'MY_DB_PORT_8081_TCP_PROTO=tcp',
      'MY_DB_PORT_53_UDP=udp://172.17.0.3:53',
      'MY_DB_PORT_53_UDP_ADDR=172.17.0.3',
      'MY_DB_PORT_53_UDP_PORT=53',
      'MY_DB_PORT_53_UDP_PROTO=udp',
      'MY_DB_PORT_8080_TCP_START=tcp://172.17.0.3:8080',
      'MY_DB_PORT_8080_TCP_PORT_START=8080',
      'MY_DB_PORT_8080_TCP_END=tcp://172.17.0.3:8081',
      'MY_DB_PORT_8080_TCP_PORT_END=8081',
      'MY_DB_NAME=/web/my-db',
      'MY_DB_ENV_PASSWORD=a=b',
      'MY_DB_ENV_HOSTNAME=x',
    ]);
  });

  it('a run at the end of the list is announced too; no ports, no port variables', () => {
    const env = linkEnvironment('/a/b', '10.0.0.2', [], ['80/tcp', '81/tcp']);
    assert.deepEqual(env.filter((e) => /_(START|END)=/.test(e)), [
      'B_PORT_80_TCP_START=tcp://10.0.0.2:80',
      'B_PORT_80_TCP_PORT_START=80',
      'B_PORT_80_TCP_END=tcp://10.0.0.2:81',
      'B_PORT_80_TCP_PORT_END=81',
    ]);
    assert.deepEqual(linkEnvironment('/a/b', '10.0.0.2', [], []), ['B_NAME=/a/b']);
  });

  it('rm --link: finds /linker/alias; a plain name is the default link name; unknown is 404', () => {
    const rec = (name: string, links: string[] | null): ContainerRecord => ({ Name: name, HostConfig: { Links: links } }) as unknown as ContainerRecord;
    const all = [rec('db', null), rec('web', ['db:my-db', 'cache'])];
    all.push(rec('cache', null));
    const find = (r: string): ContainerRecord | undefined => all.find((c) => c.Name === r.replace(/^\//, ''));
    assert.deepEqual(withoutLink('/web/my-db', find).links, ['cache']);
    assert.deepEqual(withoutLink('web/cache', find).links, ['db:my-db']);
    assert.throws(() => withoutLink('/web/nope', find), (e: Error) => e instanceof NotFound && e.message === 'No such container: /web/nope');
    assert.throws(() => withoutLink('db', find), (e: Error) => e instanceof SystemError && /cannot remove the default link name/.test(e.message));
    assert.throws(() => withoutLink('ghost', find), NotFound);
    assert.deepEqual(linksView(all[1]!, find), ['/db:/web/my-db', '/cache:/web/cache']);
  });
});

describe('list Command text', () => {
  it('quotes arguments holding a space in single quotes and leaves the path alone, as moby', () => {
    assert.equal(commandText({ Path: 'sh', Args: ['-c', 'echo a > /x'] }), "sh -c 'echo a > /x'");
    assert.equal(commandText({ Path: 'sleep', Args: ['1000'] }), 'sleep 1000');
    assert.equal(commandText({ Path: '/bin/my tool', Args: [] }), '/bin/my tool');
  });
});

describe('working directory', () => {
  it('is made inside the rootfs, through its absolute symlinks; a file in the way is "Cannot mkdir"', () => {
    const root = mkdtempSync(join(tmpdir(), 'arca-wd-'));
    const outside = mkdtempSync(join(tmpdir(), 'arca-wd-out-'));
    try {
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, 'etc', 'passwd'), '');
      symlinkSync(outside, join(root, 'link'));
      ensureWorkingDir(root, '/link/sub');
      assert.ok(statSync(join(root, outside, 'sub')).isDirectory());
      assert.equal(existsSync(join(outside, 'sub')), false);
      ensureWorkingDir(root, '/a/b/c');
      assert.ok(statSync(join(root, 'a', 'b', 'c')).isDirectory());
      for (const dir of ['/etc/passwd', '/etc/passwd/x']) {
        assert.throws(() => ensureWorkingDir(root, dir), (e: Error) => e instanceof SystemError && e.message === `Cannot mkdir: ${dir} is not a directory`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
