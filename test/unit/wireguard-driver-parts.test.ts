import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidParameter } from '../../src/errors.js';
import type { DriverNetwork } from '../../src/network/driver.js';
import { parseWgOptions } from '../../src/network/drivers/wireguard/wg-options.js';
import { WgState } from '../../src/network/drivers/wireguard/wg-state.js';
import { wireguardGoMissing, wireguardGoPath, wireguardGoTuning } from '../../src/network/drivers/wireguard/wg-process.js';
import { endpointNames, hiddenNetnsRe, IFNAME_MAX, networkNames } from '../../src/network/drivers/wireguard/wg-names.js';

function net(over: Partial<DriverNetwork> = {}): DriverNetwork {
  return {
    id: 'ab'.repeat(32),
    name: 'w',
    options: {},
    internal: false,
    enableIPv4: true,
    enableIPv6: false,
    subnets: [{ subnet: '10.5.0.0/24', gateway: '10.5.0.1' }],
    predefined: false,
    ...over,
  };
}

describe('wireguard options', () => {
  it('defaults the MTU to 1420 and grows the underlay with a larger one', () => {
    assert.deepEqual(parseWgOptions(net()), { mtu: 1420, underlayMtu: 1500 });
    assert.deepEqual(parseWgOptions(net({ options: { 'com.docker.network.driver.mtu': '8920' } })), { mtu: 8920, underlayMtu: 9000 });
  });
  it('refuses unknown keys, a small or malformed MTU, and subnets on the underlay, naming them', () => {
    assert.throws(() => parseWgOptions(net({ options: { 'arca.bogus': '1' } })), (e: unknown) => e instanceof InvalidParameter && /unknown option "arca.bogus"/.test(e.message));
    assert.throws(() => parseWgOptions(net({ options: { 'com.docker.network.driver.mtu': '1279' } })), /MTU 1279 is too small for WireGuard/);
    assert.throws(() => parseWgOptions(net({ options: { 'com.docker.network.driver.mtu': '14x' } })), /invalid MTU number: 14x/);
    assert.throws(() => parseWgOptions(net({ subnets: [{ subnet: '169.254.0.0/16', gateway: '169.254.0.1' }] })), /overlaps the wireguard underlay/);
  });
  it('takes IPv6 subnets (the underlay pool is IPv4 and never overlaps them)', () => {
    assert.doesNotThrow(() => parseWgOptions(net({ enableIPv6: true, subnets: [{ subnet: 'fd00::/64', gateway: 'fd00::1' }] })));
  });
});

describe('wireguard names', () => {
  it('fit the kernel limit and the hidden namespace is not a container namespace', () => {
    const n = endpointNames('abc123', 'f'.repeat(64));
    for (const x of [n.wgIf, n.hostVeth, networkNames('e'.repeat(64)).bridge]) assert.ok(x.length <= IFNAME_MAX, x);
    assert.match(n.netns, hiddenNetnsRe('abc123'));
    assert.doesNotMatch(n.netns, /^arca-abc123-(?:[0-9a-f]{12}|[nb][0-9a-f]{10})$/);
  });
});

describe('wireguard state', () => {
  it('gives each endpoint its own key pair and underlay /32, keeps them across a reload, in a 0600 file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgstate-'));
    try {
      const file = join(dir, 'wg', 'endpoints.json');
      const s = new WgState(file);
      const a = s.ensure('a'.repeat(64), 'n1', ['10.5.0.2']);
      const b = s.ensure('b'.repeat(64), 'n1', ['10.5.0.3']);
      assert.notEqual(a.underlay, b.underlay);
      assert.notEqual(a.privateKey, b.privateKey);
      assert.notEqual(a.underlay, '169.254.192.1');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const again = new WgState(file);
      assert.deepEqual(again.get(a.endpointId), a);
      assert.equal(again.ensure(a.endpointId, 'n1', ['10.5.0.2']).privateKey, a.privateKey);
      again.remove(a.endpointId);
      const c = again.ensure('c'.repeat(64), 'n1', ['10.5.0.4']);
      assert.equal(c.underlay, a.underlay, 'a freed underlay address is reused');
      assert.ok(!readFileSync(file, 'utf8').includes(a.privateKey));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wireguard-go binary', () => {
  it('ARCA_WIREGUARD_GO picks another build by absolute path; anything else is refused, naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-wggo-'));
    const saved = process.env.ARCA_WIREGUARD_GO;
    try {
      mkdirSync(join(dir, 'bin'));
      const bin = join(dir, 'bin', 'wireguard-go');
      writeFileSync(bin, '#!/bin/sh\n');
      chmodSync(bin, 0o755);
      const other = join(dir, 'bin', 'wg-other');
      writeFileSync(other, '#!/bin/sh\n');
      chmodSync(other, 0o755);
      process.env.ARCA_WIREGUARD_GO = bin;
      assert.equal(wireguardGoPath(), bin);
      for (const bad of [join(dir, 'missing', 'wireguard-go'), other, 'bin/wireguard-go']) {
        process.env.ARCA_WIREGUARD_GO = bad;
        assert.equal(wireguardGoPath(), undefined, bad);
        assert.match(wireguardGoMissing() ?? '', new RegExp(`ARCA_WIREGUARD_GO=${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), bad);
      }
    } finally {
      if (saved === undefined) delete process.env.ARCA_WIREGUARD_GO;
      else process.env.ARCA_WIREGUARD_GO = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs wireguard-go with one P unless ARCA_WIREGUARD_GOMAXPROCS names another count (0: Go decides)', () => {
    const saved = process.env.ARCA_WIREGUARD_GOMAXPROCS;
    try {
      delete process.env.ARCA_WIREGUARD_GOMAXPROCS;
      assert.deepEqual(wireguardGoTuning(), { GOMAXPROCS: '1' });
      process.env.ARCA_WIREGUARD_GOMAXPROCS = '4';
      assert.deepEqual(wireguardGoTuning(), { GOMAXPROCS: '4' });
      process.env.ARCA_WIREGUARD_GOMAXPROCS = '0';
      assert.deepEqual(wireguardGoTuning(), {});
      for (const bad of ['-2', 'x', '1; rm', '', '99999', '01']) {
        process.env.ARCA_WIREGUARD_GOMAXPROCS = bad;
        assert.deepEqual(wireguardGoTuning(), { GOMAXPROCS: '1' }, bad);
      }
    } finally {
      if (saved === undefined) delete process.env.ARCA_WIREGUARD_GOMAXPROCS;
      else process.env.ARCA_WIREGUARD_GOMAXPROCS = saved;
    }
  });
});
