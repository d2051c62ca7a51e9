/**
 * `arca doctor`: checks this machine for what arca needs — privileges, Node, the SQLite binding,
 * tools, kernel features — and prints one line per check with the exact fix for what is missing.
 * Exit status 0 when every required check passes; warnings (`!`) never fail it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { loadNative } from '../sys/native.js';
import { run, which } from '../sys/runner.js';
import { parseCgroupMounts } from '../containers/stats/cgroup-files.js';
import { ovnChecks } from './doctor-ovn.js';
import { wireguardChecks } from './doctor-wireguard.js';

/** `ok` ✓, `fail` ✗ (a required thing is missing), `warn` ! (optional, or degraded). */
export type CheckStatus = 'ok' | 'fail' | 'warn';

export interface CheckResult {
  status: CheckStatus;
  /** What was checked, and what was found. */
  text: string;
  /** The exact command or step that fixes it, when not ok. */
  fix?: string;
}

const MARK: Record<CheckStatus, string> = { ok: '✓', fail: '✗', warn: '!' };

export function formatResult(r: CheckResult): string {
  return `${MARK[r.status]} ${r.text}${r.fix ? `\n    fix: ${r.fix}` : ''}`;
}

/** Where the cgroup hierarchies are mounted, read from `/proc/self/mountinfo`. */
export interface CgroupLayout {
  kind: 'v1' | 'v2' | 'hybrid' | 'none';
  /** Controllers of the v1 hierarchies (`cpu`, `memory`, ...). */
  v1Controllers: string[];
  /** Mount point of the cgroup2 hierarchy, if any. */
  v2Mount?: string;
}

/**
 * Reads the cgroup layout from mountinfo text: v2 when only cgroup2 is mounted, v1 when only
 * v1 hierarchies are, hybrid when both (cgroup2 usually at `/sys/fs/cgroup/unified`).
 */
export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  const mounts = parseCgroupMounts(mountinfo);
  const v1 = mounts.filter((m) => m.version === 1);
  const v2Mount = mounts.find((m) => m.version === 2)?.mountPoint;
  // A named hierarchy (`name=systemd`) holds no controller.
  const controllers = new Set(v1.flatMap((m) => m.controllers).filter((c) => !c.startsWith('name=')));
  const kind = v1.length && v2Mount ? 'hybrid' : v1.length ? 'v1' : v2Mount ? 'v2' : 'none';
  return { kind, v1Controllers: [...controllers].sort(), v2Mount };
}

/** A tool arca runs, the Debian package that ships it, and whether arca works without it. */
interface Tool {
  bin: string;
  pkg: string;
  required: boolean;
  purpose: string;
  /** Print `<bin> --version`'s version. */
  version?: boolean;
}

const TOOLS: Tool[] = [
  { bin: 'runc', pkg: 'runc', required: true, purpose: 'OCI runtime', version: true },
  { bin: 'crun', pkg: 'crun', required: false, purpose: 'alternative OCI runtime (--runtime crun)', version: true },
  { bin: 'conmon', pkg: 'conmon', required: true, purpose: 'container monitor (logs, exit codes)', version: true },
  { bin: 'ip', pkg: 'iproute2', required: true, purpose: 'links, addresses, routes, netns' },
  { bin: 'nft', pkg: 'nftables', required: true, purpose: 'firewall, NAT, published ports' },
  { bin: 'tar', pkg: 'tar', required: true, purpose: 'image layers, docker cp' },
  { bin: 'mknod', pkg: 'coreutils', required: true, purpose: 'overlay whiteouts' },
  { bin: 'setfattr', pkg: 'attr', required: true, purpose: 'opaque overlay directories' },
  { bin: 'socat', pkg: 'socat', required: true, purpose: 'port forwarding helpers' },
  { bin: 'mount', pkg: 'mount', required: true, purpose: 'overlay rootfs, volumes' },
  { bin: 'umount', pkg: 'mount', required: true, purpose: 'overlay rootfs, volumes' },
  { bin: 'nsenter', pkg: 'util-linux', required: true, purpose: 'entering container namespaces' },
  { bin: 'unshare', pkg: 'util-linux', required: false, purpose: 'crun wrapper; the veth/bridge probes below' },
  { bin: 'iperf3', pkg: 'iperf3', required: false, purpose: 'network benchmarks only' },
];

const EXEC_TIMEOUT_MS = 5000;

async function toolCheck(t: Tool, cgroups: CgroupLayout): Promise<CheckResult> {
  const path = which(t.bin);
  if (!path) {
    return {
      status: t.required ? 'fail' : 'warn',
      text: `${t.bin}: not found (${t.purpose}${t.required ? '' : ', optional'})`,
      fix: `apt-get install ${t.pkg}`,
    };
  }
  let version = '';
  if (t.version) {
    const r = await run([path, '--version'], { allowFailure: true, timeoutMs: EXEC_TIMEOUT_MS }).catch(() => undefined);
    const m = /version\s+(\S+)/.exec(r?.stdout ?? '');
    if (m) version = ` ${m[1]}`;
  }
  if (t.bin === 'crun' && cgroups.kind === 'hybrid') {
    return {
      status: 'warn',
      text:
        `crun${version} (${path}): refuses every container on hybrid cgroups ("cgroups in hybrid mode not supported"); ` +
        'it works only in a private mount namespace with /sys/fs/cgroup/unified unmounted',
      fix: 'use runc (the default), or start the daemon as: unshare -m sh -c "umount /sys/fs/cgroup/unified; exec arca daemon --runtime crun ..."',
    };
  }
  return { status: 'ok', text: `${t.bin}${version} (${path})` };
}

function rootCheck(): CheckResult {
  const uid = process.getuid?.() ?? -1;
  return uid === 0
    ? { status: 'ok', text: 'running as root' }
    : { status: 'fail', text: `running as uid ${uid}: arca needs root (namespaces, mounts, nftables)`, fix: 'run as root: sudo arca ...' };
}

function nodeCheck(): CheckResult {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 20
    ? { status: 'ok', text: `Node.js ${process.versions.node}` }
    : {
        status: 'fail',
        text: `Node.js ${process.versions.node}: arca needs 20 or newer (Debian 12's nodejs package is 18)`,
        fix: 'install Node.js 20+ (e.g. the NodeSource nodejs_20.x apt repository), then run arca with it',
      };
}

async function sqliteCheck(): Promise<CheckResult> {
  try {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(':memory:');
    const row = db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
    db.close();
    return { status: 'ok', text: `better-sqlite3 loads (SQLite ${row.v})` };
  } catch (e) {
    return {
      status: 'fail',
      text: `better-sqlite3 does not load: ${firstLine(e instanceof Error ? e.message : String(e))}`,
      fix: 'in arca\'s folder: npm ci (or npm rebuild better-sqlite3 after a Node upgrade)',
    };
  }
}

/** The native addon: without it the daemon still works, but execs ip/nft/mount for each kernel change. */
function nativeCheck(): CheckResult {
  const { helpers, reason } = loadNative();
  if (!helpers) {
    return {
      status: 'warn',
      text: `native addon not loaded (kernel changes fall back to exec'ing ip, nft, mount): ${firstLine(reason ?? 'unknown')}`,
      fix: "in arca's folder: bash scripts/build-native.sh (needs a C compiler and Node's headers in /usr/include/node)",
    };
  }
  if (!helpers.nftAvailable()) {
    return { status: 'warn', text: 'native addon loaded, but libnftables.so.1 is missing (nft is exec\'d)', fix: 'apt-get install libnftables1' };
  }
  return { status: 'ok', text: 'native addon loads (rtnetlink, libnftables in-process, mounts)' };
}

function overlayCheck(): CheckResult {
  const fs = readText('/proc/filesystems');
  if (/\toverlay$/m.test(fs)) return { status: 'ok', text: 'overlay filesystem' };
  return {
    status: 'fail',
    text: 'overlay filesystem: not in /proc/filesystems (needed for container root filesystems)',
    fix: existsSync(`/lib/modules/${release()}`) ? 'modprobe overlay' : 'modprobe overlay (apt-get install kmod), or use a kernel with CONFIG_OVERLAY_FS',
  };
}

function namespacesCheck(): CheckResult {
  const wanted = ['net', 'pid', 'ipc', 'uts', 'mnt'];
  const missing = wanted.filter((ns) => !existsSync(`/proc/self/ns/${ns}`));
  if (missing.length === 0) return { status: 'ok', text: `namespaces: ${wanted.join(', ')}` };
  return {
    status: 'fail',
    text: `namespaces missing: ${missing.join(', ')}`,
    fix: `use a kernel built with ${missing.map((ns) => `CONFIG_${ns === 'mnt' ? 'NAMESPACES' : ns.toUpperCase() + '_NS'}`).join(', ')}`,
  };
}

function userNamespaceNote(): CheckResult {
  const has = existsSync('/proc/self/ns/user');
  return { status: 'ok', text: `user namespaces: ${has ? 'available' : 'unavailable'} (not required: containers run as real root)` };
}

function cgroupCheck(layout: CgroupLayout): CheckResult {
  if (layout.kind === 'none') {
    return {
      status: 'fail',
      text: 'cgroups: no cgroup or cgroup2 filesystem mounted',
      fix: 'mount -t cgroup2 none /sys/fs/cgroup',
    };
  }
  let controllers: string[];
  if (layout.kind === 'v2') {
    controllers = readText(`${layout.v2Mount}/cgroup.controllers`).trim().split(/\s+/).filter(Boolean);
  } else {
    controllers = layout.v1Controllers;
  }
  const desc =
    layout.kind === 'hybrid'
      ? `hybrid (v1 controllers, cgroup2 at ${layout.v2Mount})`
      : layout.kind === 'v2'
        ? `v2 (unified, at ${layout.v2Mount})`
        : 'v1';
  const missing = ['memory', 'cpu'].filter((c) => !controllers.includes(c));
  if (missing.length === 0) return { status: 'ok', text: `cgroups ${desc}; memory and cpu controllers available` };
  return {
    status: 'warn',
    text: `cgroups ${desc}; controller${missing.length > 1 ? 's' : ''} ${missing.join(' and ')} unavailable: --memory/--cpus limits will not apply`,
    fix:
      layout.kind === 'v2'
        ? `echo "+${missing.join(' +')}" > ${layout.v2Mount}/cgroup.subtree_control`
        : `mount the v1 hierarchy: mkdir -p /sys/fs/cgroup/${missing[0]} && mount -t cgroup -o ${missing[0]} cgroup /sys/fs/cgroup/${missing[0]}`,
  };
}

async function nftCheck(): Promise<CheckResult> {
  const nft = which('nft');
  if (!nft) return { status: 'fail', text: 'nf_tables: cannot check without nft', fix: 'apt-get install nftables' };
  const r = await run([nft, 'list', 'tables'], { allowFailure: true, timeoutMs: EXEC_TIMEOUT_MS }).catch((e: Error) => ({
    code: -1,
    stdout: '',
    stderr: e.message,
  }));
  if (r.code === 0) return { status: 'ok', text: 'nf_tables usable (nft list tables)' };
  return {
    status: 'fail',
    text: `nf_tables: "nft list tables" failed: ${firstLine(r.stderr) || `exit ${r.code}`}`,
    fix: 'modprobe nf_tables nft_chain_nat nft_masq (kernel needs CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ)',
  };
}

/**
 * Creating a link in a fresh network namespace that dies with `unshare` proves the kernel has the
 * link type, with nothing to clean up. Without unshare, fall back to /sys/module.
 */
async function linkTypeCheck(kind: 'veth' | 'bridge', fix: string): Promise<CheckResult> {
  const unshare = which('unshare');
  const ip = which('ip');
  if (unshare && ip) {
    const argv =
      kind === 'veth'
        ? [unshare, '--net', ip, 'link', 'add', 'doctor0', 'type', 'veth', 'peer', 'name', 'doctor1']
        : [unshare, '--net', ip, 'link', 'add', 'doctor0', 'type', 'bridge'];
    const r = await run(argv, { allowFailure: true, timeoutMs: EXEC_TIMEOUT_MS }).catch((e: Error) => ({
      code: -1,
      stdout: '',
      stderr: e.message,
    }));
    if (r.code === 0) return { status: 'ok', text: `${kind} links (created one in a throwaway netns)` };
    return { status: 'fail', text: `${kind} links: cannot create one: ${firstLine(r.stderr) || `exit ${r.code}`}`, fix };
  }
  if (existsSync(`/sys/module/${kind}`) || readText(`/lib/modules/${release()}/modules.builtin`).includes(`/${kind}.ko`)) {
    return { status: 'ok', text: `${kind} module present (not probed: unshare or ip missing)` };
  }
  return { status: 'warn', text: `${kind} links: could not tell (no unshare/ip to probe, no /sys/module/${kind})`, fix };
}

function brNetfilterCheck(): CheckResult {
  if (existsSync('/proc/sys/net/bridge')) {
    const v = readText('/proc/sys/net/bridge/bridge-nf-call-iptables').trim();
    return { status: 'ok', text: `br_netfilter loaded (bridge-nf-call-iptables=${v || '?'})` };
  }
  return {
    status: 'warn',
    text: 'br_netfilter not loaded: traffic between containers on one bridge bypasses the firewall (no --icc=false)',
    fix: 'modprobe br_netfilter',
  };
}

function ipForwardCheck(): CheckResult {
  let v: string;
  try {
    v = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  } catch (e) {
    return {
      status: 'fail',
      text: `net.ipv4.ip_forward unreadable: ${e instanceof Error ? e.message : String(e)}`,
      fix: 'mount -t proc proc /proc (and use a kernel with CONFIG_INET)',
    };
  }
  return v === '1'
    ? { status: 'ok', text: 'net.ipv4.ip_forward = 1' }
    : {
        status: 'ok',
        text: `net.ipv4.ip_forward = ${v} (readable; containers reach other networks only once it is 1)`,
        fix: 'sysctl -w net.ipv4.ip_forward=1',
      };
}

function tunCheck(): CheckResult {
  try {
    if (statSync('/dev/net/tun').isCharacterDevice()) return { status: 'ok', text: '/dev/net/tun (for wireguard-go overlays)' };
  } catch {
    /* reported below */
  }
  return {
    status: 'warn',
    text: '/dev/net/tun missing: wireguard overlay networks will not work',
    fix: 'modprobe tun, or: mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 600 /dev/net/tun',
  };
}

/** Which daemon's state the checks of running parts (the OVN stack, wireguard-go processes) read. */
export interface DoctorOptions {
  root?: string;
  execRoot?: string;
}

/** Runs every check (concurrently) and returns the results in display order. */
export async function runChecks(opts: DoctorOptions = {}): Promise<CheckResult[]> {
  const cgroups = parseCgroupLayout(readText('/proc/self/mountinfo'));
  const pending: Array<CheckResult | Promise<CheckResult>> = [
    rootCheck(),
    nodeCheck(),
    sqliteCheck(),
    nativeCheck(),
    ...TOOLS.map((t) => toolCheck(t, cgroups)),
    overlayCheck(),
    namespacesCheck(),
    userNamespaceNote(),
    cgroupCheck(cgroups),
    nftCheck(),
    linkTypeCheck('bridge', 'modprobe bridge (kernel needs CONFIG_BRIDGE)'),
    brNetfilterCheck(),
    linkTypeCheck('veth', 'modprobe veth (kernel needs CONFIG_VETH)'),
    ipForwardCheck(),
    tunCheck(),
  ];
  const ovn = ovnChecks(opts.root ?? '/var/lib/arca', opts.execRoot ?? '/run/arca');
  const wireguard = wireguardChecks(opts.execRoot ?? '/run/arca');
  return [...(await Promise.all(pending)), ...(await ovn), ...(await wireguard)];
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<number> {
  const results = await runChecks(opts);
  for (const r of results) process.stdout.write(formatResult(r) + '\n');
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  process.stdout.write(
    failed === 0
      ? `\nall required checks passed${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}\n`
      : `\n${failed} required check${failed > 1 ? 's' : ''} failed: apply the fixes above and run arca doctor again\n`,
  );
  return failed === 0 ? 0 : 1;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}
