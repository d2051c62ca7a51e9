/**
 * `docker system df` and `docker ps -s`: sizes measured from the overlay upper folders, the
 * image layers and the volumes' data, through the docker CLI, raw HTTP and docker-py.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';
import { rawRequest } from './containers-support.js';

interface Df {
  LayersSize: number;
  Images: { Id: string; Size: number; SharedSize: number; Containers: number; RepoTags: string[] }[] | null;
  Containers: { Id: string; Names: string[]; SizeRw?: number; SizeRootFs: number }[] | null;
  Volumes: { Name: string; UsageData: { Size: number; RefCount: number } }[] | null;
  BuildCache: unknown[] | null;
}

describe('system df and ps -s', () => {
  let d: TestDaemon;
  let imageSize: number;

  before(async () => {
    d = await startDaemon();
    imageSize = Number(await d.dockerOk(['image', 'inspect', '-f', '{{.Size}}', TEST_IMAGE]));
    // 1 MiB written into the container's layer, 300 kB into a volume; one container left unused.
    await d.dockerOk(['run', '--name', 'writer', '-v', 'dfvol:/data', TEST_IMAGE, 'sh', '-c', 'dd if=/dev/zero of=/blob bs=1024 count=1024 2>/dev/null; dd if=/dev/zero of=/data/v bs=1000 count=300 2>/dev/null; ln /blob /blob2']);
    await d.dockerOk(['create', '--name', 'clean', TEST_IMAGE, 'true']);
    await d.dockerOk(['volume', 'create', 'emptyvol']);
  });

  after(async () => {
    await d?.cleanup();
  });

  it('GET /system/df: layers, images, containers with their sizes, volumes with usage', async () => {
    const r = await rawRequest(d.socket, 'GET', '/v1.51/system/df');
    assert.equal(r.status, 200);
    const df = JSON.parse(r.body) as Df;
    assert.deepEqual(Object.keys(df), ['LayersSize', 'Images', 'Containers', 'Volumes', 'BuildCache']);
    assert.equal(df.LayersSize, imageSize);
    assert.equal(df.Images!.length, 1);
    assert.equal(df.Images![0]!.Size, imageSize);
    assert.equal(df.Images![0]!.Containers, 2);
    assert.equal(df.Images![0]!.SharedSize, 0);
    const writer = df.Containers!.find((c) => c.Names[0] === '/writer')!;
    // The hard link to the blob counts once.
    const rw = writer.SizeRw ?? 0;
    assert.ok(rw >= 1024 * 1024 && rw < 1024 * 1024 + 64 * 1024, `SizeRw ${writer.SizeRw}`);
    assert.equal(writer.SizeRootFs, imageSize + rw);
    const clean = df.Containers!.find((c) => c.Names[0] === '/clean')!;
    // Docker's SizeRw is omitempty: a container that wrote nothing has none.
    assert.ok(!('SizeRw' in clean), JSON.stringify(clean));
    const vol = df.Volumes!.find((v) => v.Name === 'dfvol')!;
    assert.deepEqual(vol.UsageData, { Size: 300 * 1000, RefCount: 1 });
    assert.deepEqual(df.Volumes!.find((v) => v.Name === 'emptyvol')!.UsageData, { Size: 0, RefCount: 0 });
    assert.deepEqual(df.BuildCache, []);
  });

  it('before API 1.44 each image has VirtualSize (= Size), as dockerd 20.10 sends it', async () => {
    const old = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.41/system/df')).body) as { Images: { Size: number; VirtualSize?: number }[] };
    assert.equal(old.Images[0]!.VirtualSize, imageSize);
    assert.equal(old.Images[0]!.Size, imageSize);
    const now = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.44/system/df')).body) as { Images: Record<string, unknown>[] };
    assert.ok(!('VirtualSize' in now.Images[0]!));
  });

  it('type= limits the kinds; an unknown one is a 400', async () => {
    const df = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/system/df?type=volume')).body) as Df;
    assert.equal(df.Images, null);
    assert.equal(df.Containers, null);
    assert.equal(df.Volumes!.length, 2);
    const bad = await rawRequest(d.socket, 'GET', '/v1.51/system/df?type=bogus');
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.body).message, 'unknown object type: bogus');
  });

  it('docker system df prints the totals', async () => {
    const out = await d.dockerOk(['system', 'df', '--format', '{{json .}}']);
    const rows = Object.fromEntries(out.split('\n').map((l) => JSON.parse(l) as Record<string, string>).map((r) => [r['Type'], r]));
    assert.equal(rows['Images']!['TotalCount'], '1');
    assert.equal(rows['Images']!['Active'], '1');
    assert.equal(rows['Containers']!['TotalCount'], '2');
    assert.match(rows['Containers']!['Size']!, /^1\.0\d+MB$/);
    assert.equal(rows['Local Volumes']!['TotalCount'], '2');
    assert.equal(rows['Local Volumes']!['Active'], '1');
    assert.equal(rows['Local Volumes']!['Size'], '300kB');
    const verbose = await d.dockerOk(['system', 'df', '-v']);
    assert.match(verbose, /dfvol\s+1\s+300kB/);
  });

  it('docker ps -s shows SizeRw and the virtual size', async () => {
    const out = await d.dockerOk(['ps', '-a', '-s', '--filter', 'name=writer', '--format', '{{.Size}}']);
    assert.match(out, /^1\.0\dMB \(virtual [0-9.]+MB\)$/);
    const list = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/json?all=1&size=1')).body) as { Names: string[]; SizeRw?: number; SizeRootFs: number }[];
    assert.ok(list.every((c) => (c.SizeRw === undefined || c.SizeRw > 0) && c.SizeRootFs >= imageSize));
    assert.ok(list.find((c) => c.Names[0] === '/writer')!.SizeRw! > 0);
    const plain = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/json?all=1')).body) as Record<string, unknown>[];
    assert.ok(plain.every((c) => !('SizeRw' in c)), 'sizes only when asked');
  });

  it('info has the keys dockerd 20.10 sends that clients read (cgroup features, listeners, registries, commits)', async () => {
    const info = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/info')).body) as Record<string, unknown>;
    for (const k of ['CPUShares', 'CPUSet', 'PidsLimit', 'OomKillDisable']) assert.equal(info[k], true, k);
    assert.equal(typeof info['NEventsListener'], 'number');
    assert.equal(info['GenericResources'], null);
    assert.deepEqual(info['RuncCommit'], { ID: '' });
    const reg = info['RegistryConfig'] as { IndexConfigs: Record<string, unknown> };
    assert.deepEqual(reg.IndexConfigs['docker.io'], { Name: 'docker.io', Mirrors: [], Secure: true, Official: true });
    const out = await d.dockerOk(['info', '--format', '{{.CPUShares}} {{.PidsLimit}} {{.NEventsListener}}']);
    assert.match(out, /^true true \d+$/);
  });

  it('docker-py df', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys
df = docker.DockerClient(base_url=sys.argv[1]).df()
print(len(df["Images"]), len(df["Containers"]), sorted(v["Name"] for v in df["Volumes"]))
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "1 2 ['dfvol', 'emptyvol']");
  });
});
