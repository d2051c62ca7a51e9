/**
 * The cloud-init generator (src/vm/cloud-init.ts): golden user-data and meta-data (regenerate with
 * `UPDATE_GOLDEN=1 node --test dist/test/unit/vm-cloud-init.test.js` and review the diff), the YAML
 * read back as data, and the CLI's refusals. The kernel tier checks the same output with
 * cloud-init's schema, nft -c and wg setconf.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runVmNetCloudInit } from '../../src/cli/vm-net-cloud-init.js';
import { parseGuestAllow, parseWgPeer, renderCloudInit, type CloudInitSpec } from '../../src/vm/cloud-init.js';
import { keyFromBase64, keyToBase64, publicKeyOf } from '../../src/network/drivers/wireguard/wg-keys.js';

const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');
// A pair made by `wg genkey | wg pubkey` (the guest) and another public key (the peer).
const GUEST_PRIV = 'MJaDir2y6wU7QP06Rj7+pfqNwcgL91qZvSADMN7aRno=';
const GUEST_PUB = 'V86aCY0/N2XGwKPlgHgDennxOPDbLuq3POKXDr67+ww=';
const PEER_PUB = 'FEH1lb/ZOcMv6Y9iX826Dsx8kp3SlzXC8ocd6lTHfX8=';

const FIXTURE_ARGS = [
  '--wg-address', '10.99.0.2/24',
  '--wg-peer', `${PEER_PUB}@10.77.0.1:51820`,
  '--wg-private-key', GUEST_PRIV,
  '--allow', '10.77.0.1:53/udp',
  '--allow', '192.0.2.0/24:8000-8080/tcp',
];

function cli(args: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runVmNetCloudInit(args, { out: (s) => (out += s), err: (s) => (err += s), stdin: () => '' });
  return { code, out, err };
}

/** The fixture's arguments with each option of `override` replacing the fixture's (or added; --allow repeats). */
function withOverride(base: string[], override: string[]): string[] {
  const out = [...base];
  for (let i = 0; i < override.length; i += 2) {
    const at = override[i] === '--allow' ? -1 : out.indexOf(override[i]!);
    if (at >= 0) out[at + 1] = override[i + 1]!;
    else out.push(override[i]!, override[i + 1]!);
  }
  return out;
}

function golden(name: string, text: string): void {
  const file = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
  assert.equal(text, readFileSync(file, 'utf8'), `${name} changed (UPDATE_GOLDEN=1 to accept)`);
}

describe('vm-net cloud-init', () => {
  it('prints the golden user-data, and the public key on stderr', () => {
    const r = cli(FIXTURE_ARGS);
    assert.equal(r.code, 0, r.err);
    golden('vm-cloud-init-user-data.yaml', r.out);
    assert.match(r.err, new RegExp(`guest public key: ${GUEST_PUB.replace(/[+/]/g, '\\$&')}`));
  });

  it('writes user-data (0600), meta-data and the public key with --out-dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-ci-unit-'));
    try {
      const r = cli([...FIXTURE_ARGS, '--out-dir', dir, '--hostname', 'sandbox-1']);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, '');
      assert.equal(statSync(join(dir, 'user-data')).mode & 0o777, 0o600);
      golden('vm-cloud-init-meta-data.yaml', readFileSync(join(dir, 'meta-data'), 'utf8'));
      assert.equal(readFileSync(join(dir, 'wg-public-key'), 'utf8'), `${GUEST_PUB}\n`);
      assert.equal(readFileSync(join(dir, 'user-data'), 'utf8'), cli(FIXTURE_ARGS).out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is YAML whose data is the intended config (modes as strings, argv lists, no wireguard: key)', () => {
    const text = cli(FIXTURE_ARGS).out;
    assert.ok(text.startsWith('#cloud-config\n'));
    const doc = parse(text) as { write_files: Array<Record<string, unknown>>; runcmd: string[][]; wireguard?: unknown };
    assert.deepEqual(
      doc.write_files.map((f) => [f['path'], f['permissions']]),
      [['/etc/nftables.conf', '0644'], ['/etc/wireguard/wg0.conf', '0600']],
    );
    assert.deepEqual(doc.runcmd[0], ['nft', '-f', '/etc/nftables.conf']);
    assert.deepEqual(doc.runcmd.at(-1), ['systemctl', 'enable', '--now', 'wg-quick@wg0.service']);
    assert.equal(doc.wireguard, undefined);
    const wg = String(doc.write_files[1]!['content']);
    assert.match(wg, /^PrivateKey = MJaDir2y6wU7QP06Rj7\+pfqNwcgL91qZvSADMN7aRno=$/m);
    assert.match(wg, /^AllowedIPs = 10\.99\.0\.0\/24$/m);
  });

  it('generates a fresh private key when none is given, and reports its public half', () => {
    const a = cli(FIXTURE_ARGS.filter((_, i, all) => all[i] !== '--wg-private-key' && all[i - 1] !== '--wg-private-key'));
    assert.equal(a.code, 0, a.err);
    const priv = /^ {6}PrivateKey = (\S+)$/m.exec(a.out)![1]!;
    assert.notEqual(priv, GUEST_PRIV);
    assert.match(a.err, new RegExp(`guest public key: ${keyToBase64(publicKeyOf(keyFromBase64(priv))).replace(/[+/]/g, '\\$&')}`));
  });

  it('never lets a value become YAML structure', () => {
    const spec: CloudInitSpec = {
      wgAddress: { address: '10.99.0.2', prefix: 24 },
      peer: parseWgPeer(`${PEER_PUB}@10.77.0.1:51820`),
      privateKey: GUEST_PRIV,
      allowedIps: [{ address: '10.99.0.0', prefix: 24 }],
      allow: [],
      keepalive: 0,
      uplink: 'eth0',
      hostname: 'h',
      instanceId: "x'\n  evil: [1]\n#",
    };
    const docs = renderCloudInit(spec);
    assert.deepEqual(parse(docs.metaData), { 'instance-id': spec.instanceId, 'local-hostname': 'h' });
    assert.doesNotMatch(docs.wgConf, /PersistentKeepalive/);
  });

  it('parses --allow entries', () => {
    assert.deepEqual(parseGuestAllow('10.1.2.3:53'), { net: { address: '10.1.2.3', prefix: 32 }, portLo: 53, portHi: 53, proto: 'udp' });
    assert.deepEqual(parseGuestAllow('10.1.2.3/16:80-90/tcp'), { net: { address: '10.1.0.0', prefix: 16 }, portLo: 80, portHi: 90, proto: 'tcp' });
  });

  for (const [what, args, msg] of [
    ['no prefix on --wg-address', ['--wg-address', '10.99.0.2'], /expected ADDRESS\/PREFIX/],
    ['a bad peer key', ['--wg-peer', 'abc@10.77.0.1:51820'], /public key is not 44 base64/],
    ['an IPv6 endpoint', ['--wg-peer', `${PEER_PUB}@[::1]:51820`], /IPv4:PORT/],
    ['port 0', ['--wg-peer', `${PEER_PUB}@10.77.0.1:0`], /must be 1-65535/],
    ['port 65536 in --allow', ['--allow', '10.0.0.1:65536'], /must be 1-65535/],
    ['a backwards range', ['--allow', '10.0.0.1:90-80'], /backwards/],
    ['an unknown protocol', ['--allow', '10.0.0.1:80/sctp'], /expected IP/],
    ['a bad private key', ['--wg-private-key', 'short'], /--wg-private-key/],
    ['a bad uplink', ['--uplink', 'eth0"; drop'], /--uplink/],
    ['a bad keepalive', ['--keepalive', '-1'], /--keepalive/],
  ] as Array<[string, string[], RegExp]>) {
    it(`refuses ${what}`, () => {
      const r = cli(withOverride(FIXTURE_ARGS, args));
      assert.notEqual(r.code, 0);
      assert.equal(r.out, '');
      assert.match(r.err, msg);
    });
  }
});
