/**
 * Optional (ARCA_TEST_VM_DEBIAN=1; about 90 s of TCG on a quiet host, and a guest built from the
 * Debian mirror by scripts/build-test-vm-debian.mjs): a full Debian 12 guest with systemd applies
 * the user-data of `arca vm-net cloud-init` behind `arca vm-net serve`, whose allowlist is one
 * wireguard-go peer on the netns's 127.0.0.1. The guest leases its address from FilteredNAT, its
 * tunnel answers pings, and its own firewall refuses anything outside the tunnel.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { generateKeyPair, keyToBase64 } from '../../src/network/drivers/wireguard/wg-keys.js';
import { run, which } from '../../src/sys/runner.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const VM_DIR = join(REPO_ROOT, '.cache', 'vm');
const ROOTFS = join(VM_DIR, 'debian', 'rootfs.img');
const ARCA = join(REPO_ROOT, 'bin', 'arca');
const NS = `avd${randomBytes(3).toString('hex')}`;
const WG_IF = `avdwg${randomBytes(2).toString('hex')}`;
const VM_TIMEOUT_MS = 480_000;

function skipReason(): string | false {
  if (process.env['ARCA_TEST_VM_DEBIAN'] !== '1') return 'optional: set ARCA_TEST_VM_DEBIAN=1 (a full Debian boot, ~90 s or more under TCG)';
  if (process.getuid?.() !== 0) return 'needs root (netns)';
  for (const bin of ['qemu-system-x86_64', 'wireguard-go', 'wg', 'genisoimage']) if (!which(bin)) return `needs ${bin}`;
  if (!existsSync(join(VM_DIR, 'guest.json'))) return 'no test guest (node scripts/build-test-vm.mjs)';
  if (!existsSync(ROOTFS)) return `no ${ROOTFS} (node scripts/build-test-vm-debian.mjs)`;
  return false;
}
const skip = skipReason();

function tscKhz(): number {
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? Math.round(Number(m[1]) * 1000) : 2_000_000;
}

const children: ChildProcess[] = [];
function spawnInNs(argv: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const c = spawn('nsenter', [`--net=/run/netns/${NS}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  children.push(c);
  return c;
}
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
function exited(c: ChildProcess, ms: number): Promise<boolean> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
  return new Promise((r) => {
    const t = setTimeout(() => r(false), ms);
    c.once('exit', () => {
      clearTimeout(t);
      r(true);
    });
  });
}
async function stop(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  c.kill('SIGTERM');
  if (!(await exited(c, 5000))) c.kill('SIGKILL');
  await exited(c, 5000);
}

describe('a Debian guest applies vm-net cloud-init behind FilteredNAT (optional)', { skip, concurrency: false }, () => {
  let dir = '';
  let wg: ChildProcess | undefined;
  let engine: ChildProcess | undefined;
  let qemu: ChildProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'arca-vmd-'));
    await run(['ip', 'netns', 'add', NS]);
    await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
  });
  after(async () => {
    await stop(qemu);
    await stop(engine);
    await stop(wg);
    rmSync(`/run/wireguard/${WG_IF}.sock`, { force: true });
    await run(['ip', 'netns', 'del', NS], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('leases, brings the tunnel up through FilteredNAT, and blocks the rest in the guest', async (t) => {
    const g = JSON.parse(readFileSync(join(VM_DIR, 'guest.json'), 'utf8')) as { kernel: string; initramfs: string };
    const host = generateKeyPair();
    const guestKeys = generateKeyPair();
    // The host's peer: wireguard-go in the netns on 51820, tunnel 10.99.0.1/24.
    wg = spawnInNs(['wireguard-go', WG_IF], { ...process.env, WG_PROCESS_FOREGROUND: '1' });
    for (let i = 0; i < 100 && !existsSync(`/run/wireguard/${WG_IF}.sock`); i++) await new Promise((r) => setTimeout(r, 50));
    const keyFile = join(dir, 'host.key');
    writeFileSync(keyFile, keyToBase64(host.privateKey) + '\n', { mode: 0o600 });
    const ns = (argv: string[]): string[] => ['nsenter', `--net=/run/netns/${NS}`, ...argv];
    await run(ns(['wg', 'set', WG_IF, 'listen-port', '51820', 'private-key', keyFile, 'peer', keyToBase64(guestKeys.publicKey), 'allowed-ips', '10.99.0.2/32']));
    await run(ns(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', WG_IF]));
    await run(ns(['ip', 'link', 'set', WG_IF, 'up']));

    // The user-data under test, plus the checks and a poweroff (what a real user would not add).
    const seedDir = join(dir, 'seed');
    await run([
      process.execPath, ARCA, 'vm-net', 'cloud-init', '--wg-address', '10.99.0.2/24',
      '--wg-peer', `${keyToBase64(host.publicKey)}@10.77.0.1:51820`, '--wg-private-key', keyToBase64(guestKeys.privateKey),
      '--keepalive', '5', '--out-dir', seedDir,
    ]);
    const userData = parse(readFileSync(join(seedDir, 'user-data'), 'utf8')) as { runcmd: unknown[] };
    userData.runcmd.push([
      'sh', '-c',
      'if ping -c 3 -W 3 10.99.0.1; then echo ARCA-TUNNEL ok; else echo ARCA-TUNNEL fail; fi >/dev/console 2>&1; ' +
        'if ping -c 1 -W 2 10.77.0.1; then echo ARCA-GW reached; else echo ARCA-GW blocked; fi >/dev/console 2>&1; ' +
        'echo "ARCA-NFT $(nft list chain inet arca_guest output | grep denied)" >/dev/console; ' +
        'echo "ARCA-LEASE $(ip -4 -o addr show dev eth0 | tr -s " " | cut -d" " -f4) $(ip route show default)" >/dev/console',
    ]);
    const checked = '#cloud-config\n' + stringify({ ...userData, power_state: { mode: 'poweroff', delay: 'now' } });
    writeFileSync(join(seedDir, 'user-data'), checked);
    const iso = join(dir, 'seed.iso');
    await run(['genisoimage', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', join(seedDir, 'user-data'), join(seedDir, 'meta-data')]);

    const sock = join(dir, 'nic.sock');
    const statsFile = join(dir, 'stats.json');
    engine = spawnInNs([process.execPath, ARCA, 'vm-net', 'serve', '--socket', sock, '--allow', '127.0.0.1:51820/udp', '--stats-file', statsFile]);
    const t0 = Date.now();
    qemu = spawnInNs([
      'qemu-system-x86_64', '-accel', 'tcg', '-M', 'microvm', '-m', '1024', '-snapshot',
      '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
      '-kernel', join(VM_DIR, g.kernel), '-initrd', join(VM_DIR, g.initramfs),
      '-append', `console=ttyS0 panic=-1 net.ifnames=0 tsc_early_khz=${tscKhz()} arca.root=/dev/vda`,
      '-drive', `file=${ROOTFS},if=none,format=raw,id=d0`, '-device', 'virtio-blk-device,drive=d0',
      '-drive', `file=${iso},if=none,format=raw,readonly=on,id=d1`, '-device', 'virtio-blk-device,drive=d1',
      '-netdev', `stream,id=n0,server=on,addr.type=unix,addr.path=${sock}`,
      '-device', 'virtio-net-device,netdev=n0,mac=52:54:00:12:34:56',
    ]);
    let serial = '';
    qemu.stdout!.on('data', (c: Buffer) => (serial += c.toString('utf8')));
    qemu.stderr!.on('data', (c: Buffer) => (serial += c.toString('utf8')));
    const done = await exited(qemu, VM_TIMEOUT_MS);
    if (!done) qemu.kill('SIGKILL');
    const wallMs = Date.now() - t0;
    await stop(engine);
    const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as { forwarded: number; repliesIn: number; dhcp: Record<string, number>; dropped: Record<string, number> };
    const ctx = `\n--- serial (tail) ---\n${serial.slice(-6000)}\n--- stats ---\n${JSON.stringify(stats)}`;
    t.diagnostic(`Debian guest: poweroff ${wallMs} ms after spawn; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    assert.ok(done, `the guest did not power off within ${VM_TIMEOUT_MS / 1000} s${ctx}`);
    assert.match(serial, /ARCA-LEASE 10\.77\.0\.2\/24 default via 10\.77\.0\.1/, ctx);
    assert.ok(stats.dhcp['ack']! >= 1, ctx);
    assert.match(serial, /ARCA-TUNNEL ok/, ctx);
    assert.ok(stats.forwarded >= 1 && stats.repliesIn >= 1, `the handshake and the pings crossed FilteredNAT${ctx}`);
    // The ping outside the tunnel failed, and it was the guest's own firewall: its output chain
    // counted it, and FilteredNAT never saw an ICMP frame.
    assert.match(serial, /ARCA-GW blocked/, ctx);
    const denied = /ARCA-NFT .*counter packets ([0-9]+)/.exec(serial);
    assert.ok(denied && Number(denied[1]) >= 1, `the guest's output chain counted the ping${ctx}`);
    assert.equal(stats.dropped['icmp'], 0, ctx);
    const shown = (await run(ns(['wg', 'show', WG_IF, 'latest-handshakes']))).stdout;
    assert.match(shown, /\t[1-9][0-9]*\n/, `the host peer saw a handshake: ${shown}`);
  });
});
