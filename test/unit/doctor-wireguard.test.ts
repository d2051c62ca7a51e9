import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countProcesses, wireguardResults, type WireguardFacts } from '../../src/cli/doctor-wireguard.js';

const BASE: WireguardFacts = {
  path: '/usr/bin/wireguard-go',
  version: 'wireguard-go v0.0.20220316',
  kernel: false,
  inotify: { max: 128, used: 3 },
  processes: { running: 2, stale: 0 },
  execRoot: '/run/arca',
};

describe('doctor: wireguard', () => {
  it('names the package when wireguard-go is missing, as a warning only', () => {
    const r = wireguardResults({ ...BASE, missing: 'the wireguard driver needs wireguard-go, which is not installed: apt-get install wireguard-go' });
    assert.equal(r.length, 1);
    assert.equal(r[0]!.status, 'warn');
    assert.match(r[0]!.text, /^WireGuard \(wireguard driver, optional\): .*wireguard-go/);
    assert.match(r[0]!.fix!, /apt-get install wireguard-go/);
  });

  it('reports the userspace implementation, the inotify limit and the running processes', () => {
    const r = wireguardResults(BASE);
    assert.deepEqual(
      r.map((x) => [x.status, x.text]),
      [
        ['ok', 'wireguard-go v0.0.20220316 (/usr/bin/wireguard-go): WireGuard in userspace (wireguard-go); no kernel WireGuard here'],
        ['ok', 'fs.inotify.max_user_instances = 128, 3 in use by this uid (each wireguard-go holds one)'],
        ['ok', 'wireguard-go of /run/arca: 2 running'],
      ],
    );
    assert.match(wireguardResults({ ...BASE, kernel: true })[0]!.text, /kernel module is available but not used/);
  });

  it('warns when inotify instances run short, and about pidfiles of dead processes', () => {
    const r = wireguardResults({ ...BASE, inotify: { max: 128, used: 120 }, processes: { running: 1, stale: 2 } });
    assert.equal(r[1]!.status, 'warn');
    assert.match(r[1]!.text, /too many open files/);
    assert.match(r[1]!.fix!, /sysctl -w fs\.inotify\.max_user_instances=/);
    assert.equal(r[2]!.status, 'warn');
    assert.match(r[2]!.text, /1 running, 2 pidfiles in \/run\/arca\/wireguard naming no running process/);
  });

  it('counts pidfiles that name no wireguard-go as stale', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-doctor-wg-'));
    try {
      assert.deepEqual(countProcesses(dir), { running: 0, stale: 0 });
      mkdirSync(join(dir, 'wireguard'));
      // This test's own PID is alive but is not wireguard-go.
      writeFileSync(join(dir, 'wireguard', 'wg0123456789ab.pid'), `${process.pid}\n`);
      writeFileSync(join(dir, 'wireguard', 'wg0123456789cd.pid'), 'garbage');
      writeFileSync(join(dir, 'wireguard', 'wg0123456789ab.log'), 'not a pidfile');
      assert.deepEqual(countProcesses(dir), { running: 0, stale: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
