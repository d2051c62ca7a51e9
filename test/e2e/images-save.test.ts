/**
 * `docker save` end to end: the archive loads back into a second arca daemon with the same image
 * id (layers rebuilt byte for byte from their unpacked folders, whiteouts and odd tars included),
 * `-o`, saving by id and by repository, and Docker's 404 for an unknown image.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

function shOk(argv: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 120_000, env });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A docker-archive of three layers: files, a whiteout and an opaque folder over them, and a
 * path given twice (which the rebuild cannot serve from the folder, so arca keeps that tar).
 */
const MAKE_ARCHIVE = String.raw`
import hashlib, io, json, sys, tarfile
out = sys.argv[1]
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE; info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data); info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
long = 'd/' + 'n' * 150
layers = [
    layer([('a', None), ('a/x', b'gone\n'), ('a/y', b'kept\n'), ('o', None), ('o/old', b'old\n'), (long, b'long name\n'), ('empty', b'')]),
    layer([('a', None), ('a/.wh.x', b''), ('o', None), ('o/.wh..wh..opq', b''), ('o/new', b'new\n'), ('big', b'z' * 300000)]),
    layer([('twice', b'first\n'), ('twice', b'second\n')]),
]
diff_ids = ['sha256:' + hashlib.sha256(l).hexdigest() for l in layers]
config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'created': '2024-01-02T03:04:05Z',
    'config': {'Cmd': ['sh']}, 'rootfs': {'type': 'layers', 'diff_ids': diff_ids},
    'history': [{'created_by': 'layer %d' % i} for i in range(3)]}).encode()
with tarfile.open(out, 'w') as t:
    def add(name, data):
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    for i, l in enumerate(layers): add('l%d.tar' % i, l)
    add('config.json', config)
    add('manifest.json', json.dumps([{'Config': 'config.json', 'RepoTags': ['arca-save/odd:v1'],
        'Layers': ['l%d.tar' % i for i in range(3)]}]).encode())
`;

describe('docker save', () => {
  let a: TestDaemon;
  let b: TestDaemon;
  let tmp: string;

  before(async () => {
    [a, b] = await Promise.all([startDaemon(), startDaemon({ loadTestImage: false })]);
    tmp = mkdtempSync(join(tmpdir(), 'arca-save-e2e-'));
  });

  after(async () => {
    await Promise.all([a?.cleanup(), b?.cleanup()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('docker save | docker load moves the image to another daemon with the same id', async () => {
    const id = await a.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]);
    // A real pipe between the two CLIs, as users type it.
    const out = shOk(['sh', '-c', `DOCKER_HOST=${a.env.DOCKER_HOST} docker save ${TEST_IMAGE} | DOCKER_HOST=${b.env.DOCKER_HOST} docker load`], {
      ...process.env,
      DOCKER_CONFIG: a.env.DOCKER_CONFIG,
    });
    assert.match(out, new RegExp(`Loaded image: ${TEST_IMAGE}`));
    assert.equal(await b.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]), id);
    assert.equal(await b.dockerOk(['run', '--rm', TEST_IMAGE, 'echo', 'hello from b']), 'hello from b');
  });

  it('docker save -o writes an OCI layout with manifest.json whose blobs hash to their names', async () => {
    const file = join(tmp, 'busybox.tar');
    await a.dockerOk(['save', '-o', file, TEST_IMAGE]);
    const x = join(tmp, 'x');
    mkdirSync(x);
    shOk(['tar', '-xf', file, '-C', x]);
    for (const f of ['index.json', 'manifest.json', 'oci-layout', 'repositories']) assert.ok(readdirSync(x).includes(f), f);
    const manifest = JSON.parse(readFileSync(join(x, 'manifest.json'), 'utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    assert.equal(manifest.length, 1);
    assert.deepEqual(manifest[0]!.RepoTags, [TEST_IMAGE]);
    for (const blob of readdirSync(join(x, 'blobs', 'sha256'))) {
      assert.equal(createHash('sha256').update(readFileSync(join(x, 'blobs', 'sha256', blob))).digest('hex'), blob);
    }
    const diffIds = JSON.parse(await a.dockerOk(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', TEST_IMAGE])) as string[];
    assert.deepEqual(manifest[0]!.Layers, diffIds.map((d) => `blobs/sha256/${d.slice(7)}`));
    const index = JSON.parse(readFileSync(join(x, 'index.json'), 'utf8')) as { manifests: { annotations: Record<string, string> }[] };
    assert.equal(index.manifests[0]!.annotations['io.containerd.image.name'], `docker.io/${TEST_IMAGE}`);
  });

  it('layers with whiteouts, long names and a repeated path come back byte for byte', async () => {
    const src = join(tmp, 'odd.tar');
    shOk(['python3', '-c', MAKE_ARCHIVE, src]);
    await a.dockerOk(['load', '-i', src]);
    const id = await a.dockerOk(['image', 'inspect', '-f', '{{.Id}}', 'arca-save/odd:v1']);
    const saved = join(tmp, 'odd-saved.tar');
    await a.dockerOk(['save', '-o', saved, 'arca-save/odd:v1']);
    await b.dockerOk(['load', '-i', saved]);
    assert.equal(await b.dockerOk(['image', 'inspect', '-f', '{{.Id}}', 'arca-save/odd:v1']), id);
    // Loading checked every layer's sha256 against the config's diff ids; the whiteout is in the tar again.
    const m = JSON.parse(shOk(['tar', '-xOf', saved, 'manifest.json'])) as { Layers: string[] }[];
    assert.match(shOk(['sh', '-c', `tar -xOf "$0" "$1" | tar -t`, saved, m[0]!.Layers[1]!]), /a\/\.wh\.x/);
  });

  it('saves by id (untagged) and by repository name (all its tags)', async () => {
    await a.dockerOk(['tag', TEST_IMAGE, 'arca-save/two:a']);
    await a.dockerOk(['tag', TEST_IMAGE, 'arca-save/two:b']);
    const file = join(tmp, 'repo.tar');
    await a.dockerOk(['save', '-o', file, 'arca-save/two']);
    const m = JSON.parse(shOk(['tar', '-xOf', file, 'manifest.json'])) as { RepoTags: string[] }[];
    assert.deepEqual(m.map((e) => e.RepoTags.sort()), [['arca-save/two:a', 'arca-save/two:b']]);

    const id = await a.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]);
    const byId = join(tmp, 'id.tar');
    await a.dockerOk(['save', '-o', byId, id.slice(7, 19)]);
    const m2 = JSON.parse(shOk(['tar', '-xOf', byId, 'manifest.json'])) as { RepoTags: string[] | null }[];
    assert.equal(m2[0]!.RepoTags, null);
  });

  it('an unknown image is Docker\'s 404 and writes no file', async () => {
    const file = join(tmp, 'nope.tar');
    const r = await a.docker(['save', '-o', file, 'arca-save/nope:v9']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error response from daemon: No such image: arca-save\/nope:v9/);
    const r2 = await a.docker(['save', 'arca-save/nope']);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /No such image: arca-save\/nope/);
  });
});
