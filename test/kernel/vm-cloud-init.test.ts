/**
 * What `arca vm-net cloud-init` writes, checked by the tools that will consume it: cloud-init's own
 * schema (Debian's cloud-init, extracted under .cache/vm/cloud-init by scripts/build-test-vm.mjs and
 * run offline, never installed), the firewall by nft in a throwaway namespace (`nft -c`, then a real
 * load), and the WireGuard config by `wg-quick strip` + `wg setconf` on a wireguard-go interface in
 * that namespace.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseWgPeer, renderCloudInit, type CloudInitSpec } from '../../src/vm/cloud-init.js';
import { generateKeyPair, keyToBase64 } from '../../src/network/drivers/wireguard/wg-keys.js';
import { run, which } from '../../src/sys/runner.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLOUD_INIT_ROOT = join(REPO_ROOT, '.cache', 'vm', 'cloud-init');
const NS = `avc${randomBytes(3).toString('hex')}`;
const WG_IF = `avcwg${randomBytes(2).toString('hex')}`;
const inNs = (argv: string[]): string[] => ['nsenter', `--net=/run/netns/${NS}`, ...argv];

const skip = process.getuid?.() !== 0 ? 'needs root' : !which('nft') ? 'needs nft' : false;
const skipCloudInit = existsSync(join(CLOUD_INIT_ROOT, 'usr', 'bin', 'cloud-init'))
  ? false
  : `no offline cloud-init in ${CLOUD_INIT_ROOT} (node scripts/build-test-vm.mjs)`;
const skipWg = !which('wireguard-go') || !which('wg') || !which('wg-quick') ? 'needs wireguard-go, wg and wg-quick' : false;

function spec(extra: Partial<CloudInitSpec> = {}): CloudInitSpec {
  return {
    wgAddress: { address: '10.99.0.2', prefix: 24 },
    peer: parseWgPeer(`${keyToBase64(generateKeyPair().publicKey)}@10.77.0.1:51820`),
    privateKey: keyToBase64(generateKeyPair().privateKey),
    allowedIps: [{ address: '10.99.0.0', prefix: 24 }],
    allow: [{ net: { address: '192.0.2.0', prefix: 24 }, portLo: 8000, portHi: 8080, proto: 'tcp' }],
    keepalive: 25,
    uplink: 'eth0',
    hostname: 'arca-vm',
    ...extra,
  };
}

describe('vm-net cloud-init output, checked by its consumers', { skip, concurrency: false }, () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'arca-vmci-'));
    await run(['ip', 'netns', 'add', NS]);
  });
  after(async () => {
    await run(['ip', 'netns', 'del', NS], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });

  /** cloud-init schema, with no network at all (unshare -n): exit code and output. */
  async function schema(file: string): Promise<{ code: number | null; out: string }> {
    const r = await run(
      ['unshare', '-n', '/usr/bin/python3', join(CLOUD_INIT_ROOT, 'usr', 'bin', 'cloud-init'), 'schema', '--config-file', file],
      { allowFailure: true, timeoutMs: 60_000, env: { ...process.env, PYTHONPATH: join(CLOUD_INIT_ROOT, 'usr', 'lib', 'python3', 'dist-packages') } },
    );
    return { code: r.code, out: r.stdout + r.stderr };
  }

  it('is valid cloud-config to cloud-init 22.4 (and the check rejects an unquoted mode)', { skip: skipCloudInit }, async () => {
    const docs = renderCloudInit(spec());
    const good = join(dir, 'user-data');
    writeFileSync(good, docs.userData);
    const ok = await schema(good);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /Valid cloud-config/);
    // The same document with a bare 0600: YAML's integer 384, which the schema must refuse, so the
    // check above is known to bite.
    const bad = join(dir, 'user-data-bad');
    writeFileSync(bad, docs.userData.replace(`permissions: "0600"`, 'permissions: 0600'));
    const no = await schema(bad);
    assert.equal(no.code, 1, no.out);
    assert.match(no.out, /permissions: 384 is not of type 'string'/);
    // meta-data is plain YAML that NoCloud reads.
    assert.equal((parse(docs.metaData) as Record<string, string>)['local-hostname'], 'arca-vm');
  });

  it('has a firewall nft accepts (nft -c), which loads as a default-deny table', async () => {
    const { nftablesConf } = renderCloudInit(spec());
    const file = join(dir, 'nftables.conf');
    writeFileSync(file, nftablesConf);
    await run(inNs(['nft', '-c', '-f', file]));
    assert.equal((await run(inNs(['nft', 'list', 'ruleset']))).stdout.trim(), '', 'nft -c changed nothing');
    await run(inNs(['nft', '-f', file]));
    const listed = (await run(inNs(['nft', 'list', 'table', 'inet', 'arca_guest']))).stdout;
    assert.equal((listed.match(/policy drop;/g) ?? []).length, 3, listed);
    assert.match(listed, /ip daddr 10\.77\.0\.1 udp dport 51820 accept/);
    assert.match(listed, /ip daddr 192\.0\.2\.0\/24 tcp dport 8000-8080 accept/);
    // A broken file is reported by nft -c with a non-zero exit.
    writeFileSync(file, nftablesConf.replace('policy drop;', 'policy explode;'));
    const r = await run(inNs(['nft', '-c', '-f', file]), { allowFailure: true });
    assert.notEqual(r.code, 0);
    await run(inNs(['nft', 'flush', 'ruleset']));
  });

  it('has a WireGuard config that wg setconf applies to a scratch interface', { skip: skipWg }, async () => {
    const s = spec();
    const { wgConf } = renderCloudInit(s);
    const conf = join(dir, 'wg0.conf');
    writeFileSync(conf, wgConf, { mode: 0o600 });
    await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    const wg: ChildProcess = spawn('nsenter', [`--net=/run/netns/${NS}`, 'wireguard-go', WG_IF], {
      stdio: 'ignore',
      env: { ...process.env, WG_PROCESS_FOREGROUND: '1' },
    });
    try {
      const sock = `/run/wireguard/${WG_IF}.sock`;
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(existsSync(sock), 'wireguard-go came up');
      const stripped = (await run(['wg-quick', 'strip', conf])).stdout;
      assert.doesNotMatch(stripped, /^Address/m);
      // A file, not /dev/stdin: the runner's stdin is a socket, which wg cannot fopen.
      const strippedFile = join(dir, 'wg0.stripped');
      writeFileSync(strippedFile, stripped, { mode: 0o600 });
      await run(inNs(['wg', 'setconf', WG_IF, strippedFile]));
      const shown = (await run(inNs(['wg', 'showconf', WG_IF]))).stdout;
      assert.match(shown, new RegExp(`PrivateKey = ${s.privateKey.replace(/[+/]/g, '\\$&')}`));
      assert.match(shown, new RegExp(`PublicKey = ${s.peer.publicKey.replace(/[+/]/g, '\\$&')}`));
      assert.match(shown, /Endpoint = 10\.77\.0\.1:51820/);
      assert.match(shown, /AllowedIPs = 10\.99\.0\.0\/24/);
      assert.match(shown, /PersistentKeepalive = 25/);
      // A damaged key is refused before anything is applied.
      const bad = stripped.replace(s.privateKey, s.privateKey.slice(0, 20));
      writeFileSync(strippedFile, bad);
      const r = await run(inNs(['wg', 'setconf', WG_IF, strippedFile]), { allowFailure: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Key is not the correct length or format/);
    } finally {
      const exited = new Promise<void>((r) => (wg.exitCode !== null ? r() : wg.once('exit', () => r())));
      wg.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (wg.exitCode === null) wg.kill('SIGKILL');
      rmSync(`/run/wireguard/${WG_IF}.sock`, { force: true });
    }
  });
});
