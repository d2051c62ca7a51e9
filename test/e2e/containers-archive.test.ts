/**
 * A container's files with the stock docker CLI: `docker cp` both ways on running, created and
 * stopped containers (Docker's path rules, `-a`, `-L`, volumes), symlink escapes in both
 * directions (the host's files are never read nor written), errors, `docker diff` and
 * `docker export`; docker-py's get_archive/put_archive.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';

function tarList(buf: Buffer): string[] {
  const r = spawnSync('tar', ['-t', '-f', '-'], { input: buf, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

describe('containers: docker cp, diff, export', () => {
  let d: TestDaemon;
  let work: string;
  /** A folder on the host with a secret the containers try to reach through symlinks. */
  let hostDir: string;

  before(async () => {
    d = await startDaemon();
    work = mkdtempSync(join(tmpdir(), 'arca-cp-'));
    hostDir = mkdtempSync(join(tmpdir(), 'arca-escape-'));
    writeFileSync(join(hostDir, 'secret'), 'HOST SECRET\n');
  });

  after(async () => {
    await d?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
    if (hostDir) rmSync(hostDir, { recursive: true, force: true });
  });

  const sh = (c: string, script: string): Promise<string> => d.dockerOk(['exec', c, 'sh', '-c', script]);
  const cpOut = async (args: string[]): Promise<Buffer> => {
    const r = spawnSync('docker', ['cp', ...args], { env: d.env, timeout: 60_000, maxBuffer: 256 << 20 });
    assert.equal(r.status, 0, r.stderr?.toString());
    return r.stdout;
  };
  const hostDirUntouched = (): void => {
    assert.deepEqual(readdirSync(hostDir), ['secret']);
    assert.equal(readFileSync(join(hostDir, 'secret'), 'utf8'), 'HOST SECRET\n');
  };

  it('copies files and folders out of a running container', async () => {
    await d.dockerOk(['run', '-d', '--name', 'src', TEST_IMAGE, 'sleep', '600']);
    await sh('src', 'mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && ln -s a /data/link');
    const out = join(work, 'out1');
    mkdirSync(out);
    await d.dockerOk(['cp', 'src:/data/a', join(out, 'a-copy')]);
    assert.equal(readFileSync(join(out, 'a-copy'), 'utf8'), 'one\n');
    // A folder into an existing folder lands inside it.
    await d.dockerOk(['cp', 'src:/data', out]);
    assert.equal(readFileSync(join(out, 'data', 'sub', 'b'), 'utf8'), 'two\n');
    // `dir/.` copies the contents.
    mkdirSync(join(out, 'contents'));
    await d.dockerOk(['cp', 'src:/data/.', join(out, 'contents')]);
    assert.deepEqual(readdirSync(join(out, 'contents')).sort(), ['a', 'link', 'sub']);
    // A symlink comes as itself, with -L as what it points to.
    await d.dockerOk(['cp', 'src:/data/link', join(out, 'l1')]);
    assert.ok(lstatSync(join(out, 'l1')).isSymbolicLink());
    assert.equal(spawnSync('readlink', [join(out, 'l1')], { encoding: 'utf8' }).stdout.trim(), 'a');
    await d.dockerOk(['cp', '-L', 'src:/data/link', join(out, 'l2')]);
    assert.equal(readFileSync(join(out, 'l2'), 'utf8'), 'one\n');
    // A trailing slash follows a link to a folder; the entries keep the name asked for.
    await sh('src', 'ln -s /data /datalink');
    await d.dockerOk(['cp', 'src:/datalink/', join(out, 'via-link')]);
    assert.equal(readFileSync(join(out, 'via-link', 'sub', 'b'), 'utf8'), 'two\n');
    const viaNames = tarList(await cpOut(['src:/datalink/', '-']));
    assert.ok(viaNames.includes('datalink/a'), viaNames.join(','));
    // To stdout: a tar whose entries are named after the last element.
    const names = tarList(await cpOut(['src:/data', '-']));
    assert.ok(names.includes('data/sub/b'), names.join(','));
  });

  it('copies the whole root of a running container, /proc and /sys as empty folders', async () => {
    const names = tarList(await cpOut(['src:/', '-']));
    for (const want of ['./etc/passwd', './data/a', './proc/', './sys/']) assert.ok(names.includes(want), want);
    assert.ok(!names.some((n) => n.startsWith('./proc/') && n !== './proc/'), 'something of /proc was archived');
    assert.ok(!names.some((n) => n.startsWith('./sys/') && n !== './sys/'), 'something of /sys was archived');
    assert.deepEqual(tarList(await cpOut(['src:/proc', '-'])), ['proc/']);
    const kcore = await d.docker(['cp', 'src:/proc/kcore', join(work, 'kcore')]);
    assert.notEqual(kcore.code, 0);
    assert.match(kcore.stderr, /Could not find the file \/proc\/kcore in container src/);
  });

  it('copies into a running container with Docker\'s path rules', async () => {
    const f = join(work, 'in.txt');
    writeFileSync(f, 'payload\n');
    await d.dockerOk(['cp', f, 'src:/tmp']);
    assert.equal(await sh('src', 'cat /tmp/in.txt'), 'payload');
    await d.dockerOk(['cp', f, 'src:/tmp/renamed.txt']);
    assert.equal(await sh('src', 'cat /tmp/renamed.txt'), 'payload');
    const dir = join(work, 'tree');
    mkdirSync(join(dir, 'x'), { recursive: true });
    writeFileSync(join(dir, 'x', 'y'), 'deep\n');
    await d.dockerOk(['cp', dir, 'src:/tmp']);
    assert.equal(await sh('src', 'cat /tmp/tree/x/y'), 'deep');
    await d.dockerOk(['cp', `${dir}/.`, 'src:/tmp/flat']);
    assert.equal(await sh('src', 'cat /tmp/flat/x/y'), 'deep');
    // A trailing slash names a folder: on a file it is an error.
    const bad = await d.docker(['cp', f, 'src:/tmp/in.txt/']);
    assert.notEqual(bad.code, 0);
    // A file does not replace a folder.
    await sh('src', 'mkdir -p /tmp/clash/in.txt');
    const clash = await d.docker(['cp', f, 'src:/tmp/clash']);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, /cannot overwrite directory/);
  });

  it('keeps ownership from the archive, and gives it to the container\'s user with -a', async () => {
    const f = join(work, 'owned.txt');
    writeFileSync(f, 'x\n');
    chownSync(f, 4321, 4322);
    await d.dockerOk(['run', '-d', '--name', 'usr', '-u', '1234:2345', TEST_IMAGE, 'sleep', '600']);
    await d.dockerOk(['cp', f, 'usr:/tmp/plain.txt']);
    assert.equal(await sh('usr', 'stat -c %u:%g /tmp/plain.txt'), '4321:4322');
    await d.dockerOk(['cp', '-a', f, 'usr:/tmp/archived.txt']);
    assert.equal(await sh('usr', 'stat -c %u:%g /tmp/archived.txt'), '1234:2345');
    await d.dockerOk(['rm', '-f', 'usr']);
  });

  it('answers Docker\'s errors', async () => {
    const r = await d.docker(['cp', 'src:/nope', join(work, 'x')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Could not find the file \/nope in container src/);
    const r2 = await d.docker(['cp', join(work, 'in.txt'), 'src:/nope/deeper/']);
    assert.notEqual(r2.code, 0);
    // The CLI checks the parent itself and says so in its own words.
    assert.match(r2.stderr, /Could not find the file \/nope|no such directory/);
    const r3 = await d.docker(['cp', 'ghost:/etc/passwd', join(work, 'x')]);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /No such container: ghost/);
  });

  it('resolves every symlink inside the container, reading', async () => {
    await sh(
      'src',
      `mkdir -p ${hostDir} && echo CONTAINER > ${hostDir}/secret && echo CONTAINERSHADOW > /etc/shadow && ` +
        `ln -s /etc/shadow /shadowlink && ln -s / /rootlink && ln -s ../../../../../.. /up && ln -s ${hostDir}/secret /abs`,
    );
    const out = join(work, 'esc');
    mkdirSync(out);
    await d.dockerOk(['cp', '-L', 'src:/shadowlink', join(out, 'shadow')]);
    assert.equal(readFileSync(join(out, 'shadow'), 'utf8'), 'CONTAINERSHADOW\n');
    await d.dockerOk(['cp', `src:/rootlink${hostDir}/secret`, join(out, 's1')]);
    assert.equal(readFileSync(join(out, 's1'), 'utf8'), 'CONTAINER\n');
    await d.dockerOk(['cp', `src:/up${hostDir}/secret`, join(out, 's2')]);
    assert.equal(readFileSync(join(out, 's2'), 'utf8'), 'CONTAINER\n');
    await d.dockerOk(['cp', '-L', 'src:/abs', join(out, 's3')]);
    assert.equal(readFileSync(join(out, 's3'), 'utf8'), 'CONTAINER\n');
    await d.dockerOk(['cp', 'src:/up/../../etc/shadow', join(out, 's4')]);
    assert.equal(readFileSync(join(out, 's4'), 'utf8'), 'CONTAINERSHADOW\n');
    hostDirUntouched();
  });

  it('resolves every symlink inside the container, writing', async () => {
    const f = join(work, 'pwn.txt');
    writeFileSync(f, 'PWNED\n');
    await d.dockerOk(['cp', f, `src:/rootlink${hostDir}/`]);
    await d.dockerOk(['cp', f, `src:/up${hostDir}/pwn2.txt`]);
    assert.equal(await sh('src', `cat ${hostDir}/pwn.txt ${hostDir}/pwn2.txt`), 'PWNED\nPWNED');
    // A crafted archive: a symlink to the host folder, then a file through it, then a `..` climb.
    const stage = join(work, 'stage');
    mkdirSync(join(stage, 'e'), { recursive: true });
    symlinkSync(hostDir, join(stage, 'evil'));
    writeFileSync(join(stage, 'e', 'through-link'), 'PWNED\n');
    const crafted = spawnSync('tar', ['-C', stage, '-c', '-f', '-', '--transform=s,^e/,evil/,', 'evil', 'e/through-link'], { maxBuffer: 1 << 20 });
    assert.equal(crafted.status, 0, crafted.stderr?.toString());
    await sh('src', 'mkdir -p /drop');
    const put = spawnSync('docker', ['cp', '-', 'src:/drop'], { env: d.env, input: crafted.stdout, timeout: 60_000 });
    assert.equal(put.status, 0, put.stderr?.toString());
    assert.equal(await sh('src', `cat ${hostDir}/through-link`), 'PWNED');
    const climb = spawnSync('tar', ['-C', stage, '-c', '-f', '-', '-P', '--transform=s,^e/,../../../../tmp/,', 'e/through-link'], { maxBuffer: 1 << 20 });
    const put2 = spawnSync('docker', ['cp', '-', 'src:/drop'], { env: d.env, input: climb.stdout, timeout: 60_000 });
    assert.notEqual(put2.status, 0);
    assert.ok(!existsSync('/tmp/through-link'));
    hostDirUntouched();
  });

  it('copies both ways on created and stopped containers, volumes included', async () => {
    await d.dockerOk(['create', '--name', 'fresh', '-v', 'cpvol:/vol', TEST_IMAGE, 'sleep', '600']);
    const f = join(work, 'in.txt');
    await d.dockerOk(['cp', f, 'fresh:/etc/from-host']);
    await d.dockerOk(['cp', f, 'fresh:/vol/in-volume']);
    await d.dockerOk(['cp', 'fresh:/etc/from-host', join(work, 'back1')]);
    assert.equal(readFileSync(join(work, 'back1'), 'utf8'), 'payload\n');
    await d.dockerOk(['start', 'fresh']);
    assert.equal(await sh('fresh', 'cat /etc/from-host /vol/in-volume'), 'payload\npayload');
    await sh('fresh', 'echo made-inside > /vol/inside');
    await d.dockerOk(['stop', '-t', '0', 'fresh']);
    await d.dockerOk(['cp', 'fresh:/vol/inside', join(work, 'back2')]);
    assert.equal(readFileSync(join(work, 'back2'), 'utf8'), 'made-inside\n');
    // Nothing of the copy stays mounted, and the container starts again.
    const id = await d.dockerOk(['inspect', '-f', '{{.Id}}', 'fresh']);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(join(d.root, 'containers', id)), 'the rootfs stayed mounted');
    await d.dockerOk(['start', 'fresh']);
    assert.equal(await sh('fresh', 'cat /vol/inside'), 'made-inside');
    await d.dockerOk(['rm', '-f', 'fresh']);
    await d.dockerOk(['volume', 'rm', 'cpvol']);
  });

  it('answers HEAD with the path stat header', async () => {
    const r = spawnSync('curl', ['-sS', '-I', '--unix-socket', d.socket, 'http://d/containers/src/archive?path=/data/link'], { encoding: 'utf8' });
    const line = r.stdout.split('\r\n').find((l) => l.toLowerCase().startsWith('x-docker-container-path-stat:'));
    assert.ok(line, r.stdout);
    const stat = JSON.parse(Buffer.from(line.split(': ')[1]!, 'base64').toString()) as Record<string, unknown>;
    assert.equal(stat.name, 'link');
    assert.equal(stat.linkTarget, '/data/a');
    assert.equal(Number(stat.mode) & 2 ** 27, 2 ** 27); // os.ModeSymlink
    await sh('src', 'ln -s /nowhere/at/all /dangling');
    const dl = spawnSync('curl', ['-sS', '-I', '--unix-socket', d.socket, 'http://d/containers/src/archive?path=/dangling'], { encoding: 'utf8' });
    const dline = dl.stdout.split('\r\n').find((l) => l.toLowerCase().startsWith('x-docker-container-path-stat:'))!;
    assert.equal((JSON.parse(Buffer.from(dline.split(': ')[1]!, 'base64').toString()) as { linkTarget: string }).linkTarget, '/nowhere/at/all');
    // A gzip archive is taken too (Docker's DecompressStream).
    const gz = spawnSync('bash', ['-c', 'printf gzipped > "$1/gz.txt" && tar -C "$1" -czf - gz.txt', 'mk', work]);
    const put = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '--data-binary', '@-', '--unix-socket', d.socket, 'http://d/containers/src/archive?path=/tmp'], { input: gz.stdout, encoding: 'utf8' });
    assert.equal(put.stdout, '200');
    assert.equal(await sh('src', 'cat /tmp/gz.txt'), 'gzipped');
    const miss = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-I', '--unix-socket', d.socket, 'http://d/containers/src/archive?path=/nope'], { encoding: 'utf8' });
    assert.equal(miss.stdout, '404');
  });

  it('lists changes with docker diff', async () => {
    await d.dockerOk(['run', '-d', '--name', 'chg', TEST_IMAGE, 'sleep', '600']);
    await sh('chg', 'touch /newfile && rm /bin/ls && echo x >> /etc/passwd && mkdir -p /newdir && touch /newdir/f');
    const lines = (await d.dockerOk(['diff', 'chg'])).split('\n');
    for (const want of ['A /newfile', 'D /bin/ls', 'C /bin', 'C /etc/passwd', 'A /newdir', 'A /newdir/f']) {
      assert.ok(lines.includes(want), `${want} missing from:\n${lines.join('\n')}`);
    }
    assert.ok(!lines.some((l) => /\/etc\/(hosts|hostname|resolv.conf)$/.test(l)), lines.join('\n'));
    assert.deepEqual(lines, [...lines].sort((a, b) => (a.slice(2) < b.slice(2) ? -1 : 1)));
  });

  it('exports the whole filesystem with docker export', async () => {
    const r = spawnSync('docker', ['export', 'chg'], { env: d.env, maxBuffer: 256 << 20, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr?.toString());
    const names = tarList(r.stdout);
    for (const want of ['bin/busybox', 'etc/passwd', 'newfile', 'newdir/f']) assert.ok(names.includes(want), want);
    assert.ok(!names.includes('bin/ls'));
    assert.ok(!names.some((n) => n.startsWith('./') || n.startsWith('/')));
    const missing = await d.docker(['export', 'ghost']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such container: ghost/);
  });

  it('works with docker-py get_archive and put_archive', { skip: skipWithoutDockerPy }, () => {
    const script = `
import docker, io, sys, tarfile
c = docker.DockerClient(base_url=sys.argv[1]).containers.get('src')
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as t:
    data = b'from python\\n'
    info = tarfile.TarInfo('py.txt'); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert c.put_archive('/tmp', buf.getvalue())
bits, stat = c.get_archive('/tmp/py.txt')
raw = b''.join(bits)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    print(stat['name'], t.extractfile('py.txt').read().decode().strip())
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'py.txt from python');
  });
});
