/**
 * Images end to end with the stock docker CLI: load (docker-archive and OCI archives), import
 * with --change, pull from a real local registry (Debian's docker-registry, in the daemon's
 * netns) including a multi-platform index, tag, rmi (and its 409), prune, history, and Docker's
 * errors for bad references and missing images.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { inDaemonNetns, startRegistry, type LocalRegistry } from './local-registry.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TEST_IMAGE_TAR = join(REPO_ROOT, '.cache', 'test-image.tar');

function sh(argv: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function shOk(argv: string[]): string {
  const r = sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('images', () => {
  let d: TestDaemon;
  let tmp: string;
  let registry: LocalRegistry | undefined;
  let port = 0;
  const inNs = (argv: string[]): string[] => inDaemonNetns(d, argv);

  before(async () => {
    d = await startDaemon({ loadTestImage: false });
    tmp = mkdtempSync(join(tmpdir(), 'arca-images-e2e-'));
    registry = await startRegistry(d, join(tmp, 'registry'));
    port = registry.port;
  });

  after(async () => {
    registry?.stop();
    await d?.cleanup();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('loads a docker-archive and shows it in docker images and inspect', async () => {
    assert.ok(existsSync(TEST_IMAGE_TAR), `${TEST_IMAGE_TAR} missing: node scripts/build-test-image.mjs`);
    const out = await d.dockerOk(['load', '-i', TEST_IMAGE_TAR]);
    assert.equal(out, `Loaded image: ${TEST_IMAGE}`);
    const rows = await d.dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.ok(rows.split('\n').includes(TEST_IMAGE));
    const [img] = JSON.parse(await d.dockerOk(['image', 'inspect', TEST_IMAGE])) as Record<string, any>[];
    assert.match(img!.Id, /^sha256:[a-f0-9]{64}$/);
    assert.equal(img!.GraphDriver.Name, 'overlay2');
    assert.equal(img!.RootFS.Type, 'layers');
    assert.ok(img!.Size > 1000);
    assert.ok(existsSync(img!.GraphDriver.Data.UpperDir), 'layer folder exists');
    assert.ok(existsSync(join(img!.GraphDriver.Data.UpperDir, 'bin')));
    // Short ids and sha256: prefixes resolve too.
    assert.equal(await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', img!.Id.slice(7, 19)]), img!.Id);
  });

  it('re-loading an archive that moves a tag leaves the old image dangling', async () => {
    const id = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]);
    await d.dockerOk(['import', '--change', 'CMD ["/bin/true"]', TEST_IMAGE_TAR, 'movable:1']);
    await d.dockerOk(['tag', 'movable:1', TEST_IMAGE]);
    assert.equal(await d.dockerOk(['rmi', 'movable:1']), 'Untagged: movable:1');
    const out = await d.dockerOk(['load', '-i', TEST_IMAGE_TAR]);
    assert.match(out, /The image arca-test\/busybox:latest already exists, renaming the old one with ID sha256:[a-f0-9]{64} to empty string/);
    assert.match(out, /Loaded image: arca-test\/busybox:latest/);
    assert.equal(await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]), id);
    const dangling = await d.dockerOk(['images', '-q', '--filter', 'dangling=true']);
    assert.equal(dangling.split('\n').filter(Boolean).length, 1);
    const pruned = await d.dockerOk(['image', 'prune', '-f']);
    assert.match(pruned, /deleted: sha256:/i);
    assert.match(pruned, /Total reclaimed space:/);
    assert.equal(await d.dockerOk(['images', '-q', '--filter', 'dangling=true']), '');
  });

  it('loads an OCI archive made by skopeo', async () => {
    const oci = join(tmp, 'oci.tar');
    shOk(['skopeo', 'copy', '-q', `docker-archive:${TEST_IMAGE_TAR}`, `oci-archive:${oci}:ocitest/busybox:oci`]);
    const out = await d.dockerOk(['load', '-i', oci]);
    assert.equal(out, 'Loaded image: ocitest/busybox:oci');
    const cmd = await d.dockerOk(['image', 'inspect', '-f', '{{json .Config.Cmd}}', 'ocitest/busybox:oci']);
    assert.equal(cmd, '["sh"]');
  });

  it('rejects a malformed archive with 400 and stores nothing', async () => {
    const before = await d.dockerOk(['images', '-aq']);
    const bad = join(tmp, 'bad.tar');
    writeFileSync(bad, 'this is not a tar archive at all'.repeat(40));
    const r = await d.docker(['load', '-i', bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid tar archive|archive/);
    assert.equal(await d.dockerOk(['images', '-aq']), before);
    assert.deepEqual(readdirSync(join(d.root, 'images', 'tmp')), []);
  });

  it('imports a rootfs with --change and shows the config in inspect', async () => {
    const rootfs = join(tmp, 'rootfs');
    mkdirSync(join(rootfs, 'etc'), { recursive: true });
    writeFileSync(join(rootfs, 'etc', 'hello'), 'hello\n');
    const tgz = join(tmp, 'rootfs.tgz');
    shOk(['tar', '-C', rootfs, '-czf', tgz, '.']);
    const id = await d.dockerOk([
      'import',
      '--change', 'CMD ["/bin/sh", "-c", "echo hi"]',
      '--change', 'ENTRYPOINT ["/init"]',
      '--change', 'ENV A=1 B="two words"',
      '--change', 'EXPOSE 80 53/udp',
      '--change', 'LABEL com.example=yes',
      '--change', 'USER nobody',
      '--change', 'WORKDIR /srv',
      '--change', 'VOLUME /data',
      '--change', 'STOPSIGNAL SIGINT',
      '-m', 'made by a test',
      tgz,
      'imported:v1',
    ]);
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    const [img] = JSON.parse(await d.dockerOk(['image', 'inspect', 'imported:v1'])) as Record<string, any>[];
    assert.deepEqual(img!.Config.Cmd, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(img!.Config.Entrypoint, ['/init']);
    assert.deepEqual(img!.Config.Env, ['A=1', 'B=two words']);
    assert.deepEqual(img!.Config.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
    assert.deepEqual(img!.Config.Labels, { 'com.example': 'yes' });
    assert.equal(img!.Config.User, 'nobody');
    assert.equal(img!.Config.WorkingDir, '/srv');
    assert.deepEqual(img!.Config.Volumes, { '/data': {} });
    assert.equal(img!.Config.StopSignal, 'SIGINT');
    assert.equal(img!.Comment, 'made by a test');
    assert.notEqual(img!.Metadata.LastTagTime, '0001-01-01T00:00:00Z');
    const hist = await d.dockerOk(['history', '--format', '{{.Comment}}', 'imported:v1']);
    assert.equal(hist, 'made by a test');

    const bad = await d.docker(['import', '--change', 'FROM busybox', tgz]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /from is not a valid change command/);
  });

  it('pushes to a local registry with skopeo and pulls it back with progress', async () => {
    const name = `127.0.0.1:${port}/e2e/busybox`;
    shOk(inNs(['skopeo', 'copy', '-q', '--dest-tls-verify=false', `docker-archive:${TEST_IMAGE_TAR}`, `docker://${name}:v1`]));
    const r = await d.docker(['pull', `${name}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /v1: Pulling from e2e\/busybox/);
    assert.match(r.stdout, /(Pull complete|Already exists)/);
    assert.match(r.stdout, /Digest: sha256:[a-f0-9]{64}/);
    assert.match(r.stdout, new RegExp(`Status: Downloaded newer image for ${name.replace(/\./g, '\\.')}:v1`));
    const digests = await d.dockerOk(['image', 'inspect', '-f', '{{json .RepoDigests}}', `${name}:v1`]);
    assert.match(digests, new RegExp(`${name.replace(/\./g, '\\.')}@sha256:[a-f0-9]{64}`));
    const again = await d.dockerOk(['pull', `${name}:v1`]);
    assert.match(again, /Status: Image is up to date/);
    const rows = await d.dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.ok(rows.split('\n').includes(`${name}:v1`));
  });

  it('pulls a fresh image layer by layer and picks linux/amd64 from a multi-platform index', async () => {
    // A new one-layer image (so nothing "Already exists"), published behind an OCI index that
    // also lists a platform we must skip.
    const layout = join(tmp, 'layout');
    const rootfs = join(tmp, 'rootfs2');
    mkdirSync(join(rootfs, 'opt'), { recursive: true });
    writeFileSync(join(rootfs, 'opt', 'marker'), `${Date.now()}\n`);
    const layerTgz = join(tmp, 'layer2.tgz');
    shOk(['tar', '-C', rootfs, '-czf', layerTgz, '.']);
    shOk(['skopeo', 'copy', '-q', `tarball:${layerTgz}`, `oci:${layout}:single`]);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Record<string, any>[] };
    const single = index.manifests[0]!;
    const manifestHex = (single.digest as string).slice(7);
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', manifestHex), 'utf8')) as Record<string, any>;
    const cfgHex = (manifest.config.digest as string).slice(7);
    const cfg = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', cfgHex), 'utf8')) as Record<string, any>;
    assert.equal(cfg.architecture, 'amd64');
    const multi = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: single.mediaType, digest: single.digest, size: single.size, platform: { os: 'linux', architecture: 's390x' } },
          { mediaType: single.mediaType, digest: single.digest, size: single.size, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    );
    const multiHex = sha256(multi);
    writeFileSync(join(layout, 'blobs', 'sha256', multiHex), multi);
    index.manifests.push({
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest: `sha256:${multiHex}`,
      size: multi.length,
      annotations: { 'org.opencontainers.image.ref.name': 'multi' },
    });
    writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
    const name = `127.0.0.1:${port}/e2e/multi`;
    shOk(inNs(['skopeo', 'copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${name}:1`]));

    const r = await d.docker(['pull', `${name}:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Pulling fs layer/);
    assert.match(r.stdout, /Download complete/);
    assert.match(r.stdout, /Pull complete/);
    assert.match(r.stdout, new RegExp(`Digest: sha256:${multiHex}`), 'the digest is the index digest');
    const [img] = JSON.parse(await d.dockerOk(['image', 'inspect', `${name}:1`])) as Record<string, any>[];
    assert.equal(img!.Architecture, 'amd64');
    assert.deepEqual(img!.RepoDigests, [`${name}@sha256:${multiHex}`]);
    assert.ok(existsSync(join(img!.GraphDriver.Data.UpperDir, 'opt', 'marker')));

    const wrong = await d.docker(['pull', '--platform', 'linux/arm64', `${name}:1`]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /no matching manifest for linux\/arm64/);
  });

  it('answers pull errors like Docker', async () => {
    const missingTag = await d.docker(['pull', `127.0.0.1:${port}/e2e/busybox:nope`]);
    assert.notEqual(missingTag.code, 0);
    assert.match(missingTag.stderr, new RegExp(`manifest for 127\\.0\\.0\\.1:${port}/e2e/busybox:nope not found: manifest unknown`));
    const t0 = Date.now();
    const down = await d.docker(['pull', `127.0.0.1:${port + 1}/nothing:here`]);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /connection refused/);
    assert.ok(Date.now() - t0 < 10_000, 'an unreachable registry fails fast');
    for (const ref of ['a:b:c', 'UPPER', 'x/Upper:1']) {
      const r = await d.docker(['pull', ref]);
      assert.notEqual(r.code, 0, ref);
      assert.match(r.stderr, /invalid reference format/, ref);
    }
  });

  it('tags, untags and deletes, with Docker’s answers', async () => {
    await d.dockerOk(['tag', TEST_IMAGE, 'tagged:a']);
    await d.dockerOk(['tag', TEST_IMAGE, 'localhost:5000/deep/name:b']);
    const tags = JSON.parse(await d.dockerOk(['image', 'inspect', '-f', '{{json .RepoTags}}', TEST_IMAGE])) as string[];
    assert.ok(tags.includes('tagged:a') && tags.includes('localhost:5000/deep/name:b'));
    assert.equal(await d.dockerOk(['rmi', 'tagged:a']), 'Untagged: tagged:a');
    assert.equal(await d.dockerOk(['rmi', 'localhost:5000/deep/name:b']), 'Untagged: localhost:5000/deep/name:b');

    const missing = await d.docker(['image', 'inspect', 'no-such-image']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such image: no-such-image:latest/);
    const rmMissing = await d.docker(['rmi', 'no-such-image']);
    assert.match(rmMissing.stderr, /No such image: no-such-image:latest/);
  });

  it('refuses to untag an image a container uses (409) while it is its only tag', async (t) => {
    // With several tags rmi only untags, so give the container an image of its own.
    await d.dockerOk(['import', TEST_IMAGE_TAR, 'solo:1']);
    const c = await d.docker(['create', 'solo:1', 'true']);
    if (c.code !== 0) {
      t.skip(`containers cannot be created yet: ${c.stderr.trim()}`);
      await d.dockerOk(['rmi', 'solo:1']);
      return;
    }
    const cid = c.stdout.trim();
    const id = await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', 'solo:1']);
    const r = await d.docker(['rmi', 'solo:1']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(`conflict: unable to remove repository reference "solo:1" \\(must force\\) - container ${cid.slice(0, 12)} is using its referenced image ${id.slice(7, 19)}`),
    );
    const byId = await d.docker(['rmi', id.slice(7, 19)]);
    assert.notEqual(byId.code, 0);
    assert.match(byId.stderr, /conflict: unable to delete [a-f0-9]{12} \(must be forced\) - image is being used by stopped container/);
    await d.dockerOk(['rm', cid]);
    assert.match(await d.dockerOk(['rmi', 'solo:1']), /^Untagged: solo:1\nDeleted: sha256:/);
  });

  it('deletes an image and its layers from disk, and history lists the layers', async () => {
    const name = 'imported:v1';
    const [img] = JSON.parse(await d.dockerOk(['image', 'inspect', name])) as Record<string, any>[];
    const dir = img!.GraphDriver.Data.UpperDir as string;
    assert.ok(existsSync(dir));
    const hist = JSON.parse(`[${(await d.dockerOk(['history', '--format', '{{json .}}', '--no-trunc', name])).split('\n').join(',')}]`) as Record<string, string>[];
    assert.equal(hist.length, 1);
    assert.equal(hist[0]!.ID, img!.Id);
    const out = await d.dockerOk(['rmi', name]);
    assert.match(out, /^Untagged: imported:v1\nDeleted: sha256:/);
    assert.ok(!existsSync(dir), 'layer folder removed');
  });

  it('prune with dangling=false removes unused tagged images', async () => {
    const out = await d.dockerOk(['image', 'prune', '-a', '-f']);
    assert.match(out, /untagged: /i);
    assert.equal(await d.dockerOk(['images', '-q']), '');
    assert.deepEqual(readdirSync(join(d.root, 'images', 'layers')), []);
  });
});
