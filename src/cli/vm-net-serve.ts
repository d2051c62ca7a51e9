import { parseArgs } from 'node:util';
import { ArcaError } from '../errors.js';
import { logger, setLogLevel } from '../log.js';
import { FilteredNatEngine } from '../filterednat/filtered-nat-engine.js';
import { formatIpv4 } from '../filterednat/ipv4-address.js';
import { checkSocketPath, QemuStreamClient } from '../filterednat/qemu-stream-client.js';
import { StatsFile } from '../filterednat/stats-file.js';
import { DEFAULT_VM_SUBNET } from '../filterednat/vm-subnet.js';

/**
 * vm-net serve's busy-poll window: off, as measured on a shared 2-vCPU machine the spinning engine
 * lost its core to other processes for longer than it saved in wake-ups (the README's figures).
 */
export const DEFAULT_BUSY_POLL_MS = 0;

/**
 * vm-net serve's forwarding thread whenever the addon is built: on a quiet machine it met the p99
 * target in 4 of 5 bench runs with the core shared and 5 of 5 with it reserved, where the
 * TypeScript path met it in 3 of 5 and 0 of 5 (README).
 */
export const DEFAULT_FAST_PATH: 'auto' | 'on' | 'off' = 'auto';

export const VM_NET_SERVE_USAGE = `Usage: arca vm-net serve --socket PATH --allow IP:PORT/udp [--allow ...] [OPTIONS]

Runs FilteredNAT for one VM in the foreground: the far end of the VM's only NIC, QEMU's
  -netdev stream,id=n0,server=on,addr.type=unix,addr.path=PATH
It connects to PATH (waiting until QEMU listens there, and again whenever QEMU closes the
connection and listens anew), answers the guest's ARP for the gateway and its DHCP, forwards UDP
to the allowed destinations only, through one host UDP socket per flow, and drops and counts the rest.

Options:
  --socket PATH         the unix socket QEMU listens on (required)
  --allow IP:PORT/udp   an allowed destination (repeatable, at least one). A host loopback address
                        (127.x) is offered to the guest as the gateway's address: with the default
                        subnet, --allow 127.0.0.1:51820/udp is reached by the guest at 10.77.0.1:51820.
  --subnet CIDR         the VM's wire, /8 to /30 (default ${DEFAULT_VM_SUBNET}): the gateway is its
                        first host address, the guest (leased by DHCP) its second
  --stats-file FILE     counters as JSON, replaced atomically every 500 ms and at exit
  --flow-idle SECONDS   close a flow's host socket after this long unused (default 120)
  --busy-poll MS        after each frame or reply, keep polling for MS ms instead of sleeping
                        (default ${DEFAULT_BUSY_POLL_MS}: off): no wake-up per frame, for a core's
                        worth of CPU while traffic flows, none when idle (needs the native addon,
                        scripts/build-native.sh; with the forwarding thread, the thread polls)
  --fast-path auto|on|off
                        the native addon's forwarding thread reads the stream and forwards
                        established flows and their replies itself, with no JavaScript per frame
                        (default ${DEFAULT_FAST_PATH}: when the addon is built, scripts/build-native.sh;
                        off: every frame through TypeScript; on: refuse to start without it)
  --log-level LEVEL     debug, info, warn, error (default info; logs go to stderr)

Exit status: 0 stopped by SIGTERM or SIGINT; 1 an unexpected failure while running;
2 bad usage or input (no --allow, an entry that does not parse, a bad subnet, a socket path that
exists and is not a socket, a stats file that cannot be written): nothing was started.
`;

class UsageError extends Error {}

/** `arca vm-net serve ...`; resolves with the exit status when told to stop. */
export async function runVmNetServe(argv: string[]): Promise<number> {
  let setup;
  try {
    setup = prepare(argv);
  } catch (err) {
    const known = err instanceof UsageError || err instanceof ArcaError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`arca vm-net serve: ${(err as Error).message}\n`);
    if (known) process.stderr.write(`(see arca vm-net serve --help)\n`);
    return known ? 2 : 1;
  }
  if (setup === 'help') {
    process.stdout.write(VM_NET_SERVE_USAGE);
    return 0;
  }
  return serve(setup);
}

interface Setup {
  engine: FilteredNatEngine;
  socket: string;
  stats?: StatsFile;
  client?: QemuStreamClient;
}

function prepare(argv: string[]): Setup | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      allow: { type: 'string', multiple: true, default: [] },
      subnet: { type: 'string', default: DEFAULT_VM_SUBNET },
      'stats-file': { type: 'string' },
      'flow-idle': { type: 'string', default: '120' },
      'busy-poll': { type: 'string', default: String(DEFAULT_BUSY_POLL_MS) },
      'fast-path': { type: 'string', default: DEFAULT_FAST_PATH },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  setLogLevel(values['log-level']!);
  if (!values.socket) throw new UsageError('--socket PATH is required (the unix socket QEMU listens on)');
  const idle = Number(values['flow-idle']);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(values['flow-idle']!) || !(idle > 0)) throw new UsageError(`--flow-idle "${values['flow-idle']}": expected a number of seconds above 0`);
  const busy = Number(values['busy-poll']);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(values['busy-poll']!) || !(busy <= 60_000)) throw new UsageError(`--busy-poll "${values['busy-poll']}": expected a number of ms from 0 to 60000`);
  const fast = values['fast-path'];
  if (fast !== 'auto' && fast !== 'on' && fast !== 'off') throw new UsageError(`--fast-path "${fast}": expected auto, on or off`);
  // The engine validates the allowlist and the subnet, and opens nothing until a frame asks.
  const engine = new FilteredNatEngine({ allow: values.allow!, subnet: values.subnet!, flowIdleMs: idle * 1000, busyPollMs: busy, fastPath: fast === 'auto' ? 'auto' : fast === 'on' });
  try {
    checkSocketPath(values.socket);
  } catch (err) {
    engine.close();
    throw err;
  }
  const setup: Setup = { engine, socket: values.socket };
  if (values['stats-file']) {
    const path = values['stats-file'];
    const stats = new StatsFile(path, () => snapshot(setup), (err) => logger('arca:vmnet').warn(`stats file ${path}: ${err.message}`));
    try {
      stats.write();
    } catch (err) {
      engine.close();
      throw new UsageError(`--stats-file ${path}: cannot be written: ${(err as Error).message}`);
    }
    setup.stats = stats;
  }
  return setup;
}

function snapshot(s: Setup): unknown {
  const e = s.engine;
  return {
    ...e.stats,
    hostSockets: e.hostSockets,
    busyPollMs: e.busyPolling,
    fastPath: e.fastPathCounters() ?? false,
    connected: s.client?.connected ?? false,
    connections: s.client?.connections ?? 0,
    socket: s.socket,
    subnet: e.subnet.cidr,
    gateway: formatIpv4(e.subnet.gateway),
    guest: formatIpv4(e.subnet.guest),
    allow: e.allowlist.entries.map((a) => ({ entry: a.text, guestSees: `${formatIpv4(a.guestIp)}:${a.port}` })),
    updatedAt: new Date().toISOString(),
  };
}

function serve(s: Setup): Promise<number> {
  const log = logger('arca:vmnet');
  const e = s.engine;
  return new Promise((resolve) => {
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      s.client?.stop();
      e.close();
      // The last snapshot lands before the exit status is given.
      void (s.stats ? s.stats.stop() : Promise.resolve()).then(() => resolve(code));
      // Everything is closed; should a handle still hold the loop, do not hang a supervisor's stop.
      setTimeout(() => process.exit(code), 1000).unref();
    };
    s.client = new QemuStreamClient(s.socket, e, log, (err) => {
      log.error(err.message);
      finish(2);
    });
    const allow = e.allowlist.entries.map((a) => (a.guestIp === a.hostIp ? a.text : `${a.text} as ${formatIpv4(a.guestIp)}:${a.port}`));
    log.info(`FilteredNAT on ${e.subnet.cidr}: gateway ${formatIpv4(e.subnet.gateway)}, guest ${formatIpv4(e.subnet.guest)}; allow ${allow.join(', ')}`);
    s.stats?.start(500);
    s.client.start();
    process.once('SIGTERM', () => finish(0));
    process.once('SIGINT', () => finish(0));
  });
}
