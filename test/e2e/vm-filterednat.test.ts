/**
 * A real VM behind FilteredNAT: the test guest (scripts/build-test-vm.mjs: Debian's cloud kernel, a
 * busybox initramfs) boots under QEMU with `-accel tcg`, its only NIC a `-netdev stream` unix socket
 * that `arca vm-net serve` connects to. Everything runs in a throwaway netns: the allowlisted UDP
 * echo on its 127.0.0.1, and decoys that must hear nothing. From the serial console and the stats
 * file: the guest's DHCP lease comes from FilteredNAT, the echo answers through it, and ping, TCP
 * to the echo's port, UDP to another port and UDP to another address all fail and are counted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, which } from '../../src/sys/runner.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const VM_DIR = join(REPO_ROOT, '.cache', 'vm');
const ARCA = join(REPO_ROOT, 'bin', 'arca');
const NS = `avm${randomBytes(3).toString('hex')}`;
/** Off the VM's subnet, so the guest routes it to the gateway; held by the netns's lo, with a decoy on it. */
const OTHER_ADDR = '192.0.2.1';
const GATEWAY = '10.77.0.1';
const GUEST = '10.77.0.2';
/** Boot + DHCP + five probes take 5–10 s on a quiet host; TCG on a loaded 2-vCPU host is much slower. */
const VM_TIMEOUT_MS = 180_000;
const PROBE_TIMEOUT_MS = 1500;

interface Guest {
  kernel: string;
  initramfs: string;
  kernelRelease: string;
}

function guestOrSkip(): Guest | string {
  if (process.getuid?.() !== 0) return 'needs root (netns)';
  if (!which('qemu-system-x86_64')) return 'needs qemu-system-x86_64 (apt-get install qemu-system-x86, or scripts/setup.sh)';
  const manifest = join(VM_DIR, 'guest.json');
  if (!existsSync(manifest)) return `no test guest in ${VM_DIR} (node scripts/build-test-vm.mjs)`;
  const g = JSON.parse(readFileSync(manifest, 'utf8')) as Guest;
  for (const f of [g.kernel, g.initramfs]) if (!existsSync(join(VM_DIR, f))) return `${join(VM_DIR, f)} is missing (node scripts/build-test-vm.mjs --force)`;
  return g;
}
const guest = guestOrSkip();
const skip = typeof guest === 'string' ? guest : false;

/**
 * microvm has neither HPET nor an ACPI PM timer: when the PIT calibration of the TSC fails (the TCG
 * thread descheduled on a busy host), the guest hangs for good. Giving it the host's frequency avoids it.
 */
function tscKhz(): number {
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? Math.round(Number(m[1]) * 1000) : 2_000_000;
}

const children: ChildProcess[] = [];
/** Spawns inside the test's netns (nsenter execs, so the PID is the program's own). */
function spawnInNs(argv: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const c = spawn('nsenter', [`--net=/run/netns/${NS}`, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
  children.push(c);
  return c;
}
function killAll(signal: NodeJS.Signals): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) c.kill(signal);
}
// A test process that dies must not leave QEMU or the engine running.
process.on('exit', () => killAll('SIGKILL'));

function exited(c: ChildProcess, ms: number): Promise<boolean> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    const t = setTimeout(() => resolveExit(false), ms);
    c.once('exit', () => {
      clearTimeout(t);
      resolveExit(true);
    });
  });
}

async function stop(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  c.kill('SIGTERM');
  if (!(await exited(c, 5000))) {
    c.kill('SIGKILL');
    await exited(c, 5000);
  }
}

interface EchoEvent {
  on?: string;
  from?: string;
  data?: string;
  ready?: boolean;
  echoPort?: number;
  decoyPort?: number;
}

describe('a VM behind FilteredNAT (QEMU, TCG)', { skip, concurrency: false }, () => {
  let dir = '';
  let echo: ChildProcess | undefined;
  let engine: ChildProcess | undefined;
  let qemu: ChildProcess | undefined;
  const events: EchoEvent[] = [];
  let engineLog = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'arca-vmt-'));
    await run(['ip', 'netns', 'add', NS]);
    await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', NS, 'addr', 'add', `${OTHER_ADDR}/32`, 'dev', 'lo']);
    echo = spawnInNs([process.execPath, join(REPO_ROOT, 'dist', 'test', 'e2e', 'vm-udp-echo.js'), OTHER_ADDR]);
    await new Promise<void>((ready, fail) => {
      let partial = '';
      echo!.stdout!.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) {
          const ev = JSON.parse(l) as EchoEvent;
          events.push(ev);
          if (ev.ready) ready();
        }
      });
      echo!.once('exit', (code) => fail(new Error(`the echo helper exited (${code})`)));
      setTimeout(() => fail(new Error('the echo helper did not get ready in 20 s')), 20_000).unref();
    });
  });

  after(async () => {
    await stop(qemu);
    await stop(engine);
    await stop(echo);
    await run(['ip', 'netns', 'del', NS], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('leases the guest its address, forwards only the allowlisted UDP, and drops and counts the rest', async (t) => {
    const g = guest as Guest;
    const { echoPort, decoyPort } = events.find((e) => e.ready)!;
    const sock = join(dir, 'nic.sock');
    const statsFile = join(dir, 'stats.json');
    const msg = `hello-${randomBytes(4).toString('hex')}`;

    // FNAT_E2E_FAST_PATH=on|off runs the guest against that forwarding path (default: the CLI's).
    const fast = process.env['FNAT_E2E_FAST_PATH'] ? ['--fast-path', process.env['FNAT_E2E_FAST_PATH']] : [];
    engine = spawnInNs([process.execPath, ARCA, 'vm-net', 'serve', '--socket', sock, '--allow', `127.0.0.1:${echoPort}/udp`, '--stats-file', statsFile, ...fast]);
    engine.stdout!.on('data', (c: Buffer) => (engineLog += c.toString('utf8')));
    engine.stderr!.on('data', (c: Buffer) => (engineLog += c.toString('utf8')));

    const probes = [
      `udp:${GATEWAY}:${echoPort}:${msg}`, // allowlisted (127.0.0.1 is offered as the gateway)
      `udp:${GATEWAY}:${decoyPort}:other-port`,
      `udp:${OTHER_ADDR}:${echoPort}:other-address`,
      `tcp:${GATEWAY}:${echoPort}`,
      `ping:${GATEWAY}`,
    ];
    const append = [
      'console=ttyS0', 'quiet', 'panic=-1', `tsc_early_khz=${tscKhz()}`,
      `arca.timeout_ms=${PROBE_TIMEOUT_MS}`, ...probes.map((p) => `arca.probe=${p}`),
    ].join(' ');
    const t0 = Date.now();
    qemu = spawnInNs([
      'qemu-system-x86_64', '-accel', 'tcg', '-M', 'microvm', '-m', '256',
      '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
      '-kernel', join(VM_DIR, g.kernel), '-initrd', join(VM_DIR, g.initramfs), '-append', append,
      '-netdev', `stream,id=n0,server=on,addr.type=unix,addr.path=${sock}`,
      '-device', 'virtio-net-device,netdev=n0,mac=52:54:00:12:34:56',
    ]);
    qemu.stdin!.end();
    let serial = '';
    let leaseAt: number | undefined;
    qemu.stdout!.on('data', (c: Buffer) => {
      serial += c.toString('utf8');
      if (leaseAt === undefined && serial.includes('ARCA-LEASE')) leaseAt = Date.now() - t0;
    });
    qemu.stderr!.on('data', (c: Buffer) => (serial += c.toString('utf8')));
    const done = await exited(qemu, VM_TIMEOUT_MS);
    if (!done) qemu.kill('SIGKILL');
    const wallMs = Date.now() - t0;
    const context = `\n--- serial ---\n${serial}\n--- engine ---\n${engineLog}`;
    assert.ok(done, `QEMU did not power off within ${VM_TIMEOUT_MS / 1000} s${context}`);
    t.diagnostic(`${g.kernel} (${g.kernelRelease}): lease ${leaseAt ?? '-'} ms, poweroff ${wallMs} ms after spawn; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

    // The engine writes its counters once more when it stops.
    await stop(engine);
    const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as {
      framesIn: number;
      forwarded: number;
      repliesIn: number;
      arpReplies: number;
      dropped: Record<string, number>;
      dhcp: Record<string, number>;
      fastPath: false | Record<string, number>;
    };
    const ctx = `${context}\n--- stats ---\n${JSON.stringify(stats)}`;

    // The lease is FilteredNAT's: the guest address, the gateway as router and server.
    const lease = /^ARCA-LEASE ip=(\S+) mask=(\S+) router=(\S+) serverid=(\S+)/m.exec(serial);
    assert.ok(lease, `no lease${ctx}`);
    assert.deepEqual(lease.slice(1, 5), [GUEST, '24', GATEWAY, GATEWAY], ctx);
    assert.ok(stats.dhcp['discover']! >= 1 && stats.dhcp['offer']! >= 1 && stats.dhcp['request']! >= 1 && stats.dhcp['ack']! >= 1, ctx);
    assert.ok(stats.arpReplies >= 1, `the gateway's ARP${ctx}`);

    const results = new Map<string, string>();
    for (const m of serial.matchAll(/^ARCA-PROBE [0-9]+ (\S+) (.*?)\r?$/gm)) results.set(m[1]!, m[2]!);
    assert.equal(results.size, probes.length, `every probe ran${ctx}`);
    assert.match(serial, /^ARCA-DONE/m, ctx);

    // The allowlisted echo answered through FilteredNAT, and saw the host side of the NAT.
    assert.equal(results.get(probes[0]!), `ok echo:${msg}`, ctx);
    const heard = events.filter((e) => e.on === 'echo');
    assert.deepEqual(heard.map((e) => e.data), [msg], ctx);
    assert.match(heard[0]!.from!, /^127\.0\.0\.1:[0-9]+$/);
    assert.ok(stats.forwarded >= 1 && stats.repliesIn >= 1, ctx);
    // With the thread, the guest's DHCP and ARP were handed to the engine and the echo's reply written by the thread.
    if (fast[1] === 'on') assert.ok(stats.fastPath && stats.fastPath['punted']! >= 3 && stats.fastPath['repliesOut']! >= 1, ctx);

    // Everything else failed in the guest, reached nobody, and was counted.
    for (const p of probes.slice(1)) assert.equal(results.get(p), 'timeout', `${p}${ctx}`);
    assert.deepEqual(events.filter((e) => e.on && e.on !== 'echo'), [], `a decoy heard the guest${ctx}`);
    assert.equal(stats.dropped['udp_not_allowed'], 2, `UDP to another port and to another address${ctx}`);
    assert.ok(stats.dropped['tcp']! >= 1, `the TCP SYN (and any retransmission)${ctx}`);
    assert.ok(stats.dropped['icmp']! >= 1, `the ping${ctx}`);
  });
});
