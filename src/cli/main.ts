import { parseArgs } from 'node:util';
import { logger, setLogLevel } from '../log.js';
import { ARCA_VERSION } from '../version.js';
import { runDoctor } from './doctor.js';
import { runPolicy } from './policy.js';
import { runVmNet } from './vm-net.js';
import { runNetwork } from './network.js';

const log = logger('arca:cli');

const USAGE = `Usage: arca [-H unix:///path] COMMAND

Commands:
  daemon    Run the engine in the foreground (Docker Engine API on a unix socket)
  version   Print arca's version
  doctor    Check this machine for what arca needs, and say how to fix what is missing
  policy    Manage network policies (apply, ls, inspect, rm, check; \`arca policy --help\`)
  vm-net    A VM's network: \`vm-net serve\` (FilteredNAT for its NIC), \`vm-net cloud-init\` (guest user-data; \`arca vm-net --help\`)
  network   Network extensions: \`arca network egress NAME\` (a deny network's allowlist, learnt addresses, drops)

daemon options:
  -H, --host unix:///path     API socket (default unix:///var/run/arca.sock)
      --root DIR              state folder (default /var/lib/arca)
      --exec-root DIR         runtime folder (default /run/arca)
      --runtime runc|crun     OCI runtime (default runc)
      --insecure-registry H   registry spoken to over plain HTTP (repeatable)
      --log-level LEVEL       debug, info, warn, error (default info)
      --log-policy-drops      log the flows network policies drop (10/s at most, each flow once)

doctor options:
      --root DIR, --exec-root DIR   the daemon whose OVN stack to report (defaults as above)
`;

async function daemon(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', short: 'H', default: 'unix:///var/run/arca.sock' },
      root: { type: 'string', default: '/var/lib/arca' },
      'exec-root': { type: 'string', default: '/run/arca' },
      runtime: { type: 'string', default: 'runc' },
      'insecure-registry': { type: 'string', multiple: true, default: [] },
      'log-level': { type: 'string', default: 'info' },
      'log-policy-drops': { type: 'boolean', default: false },
    },
    strict: true,
  });
  setLogLevel(values['log-level']!);
  const host = values.host!;
  if (!host.startsWith('unix://')) throw new Error(`unsupported --host "${host}": only unix:// sockets are served`);
  if (values.runtime !== 'runc' && values.runtime !== 'crun') throw new Error(`unknown runtime "${values.runtime}" (runc, crun)`);
  // Loaded here, not at the top: `arca doctor` must run even where the daemon's native
  // dependencies (better-sqlite3) are missing or broken.
  const { Daemon } = await import('../daemon.js');
  const { ApiServer } = await import('../api/server.js');
  const d = new Daemon({
    root: values.root!,
    execRoot: values['exec-root']!,
    socketPath: host.slice('unix://'.length),
    runtime: values.runtime!,
    insecureRegistries: values['insecure-registry']!,
    logPolicyDrops: values['log-policy-drops']!,
  });
  await d.start();
  const api = new ApiServer(d);
  await api.listen(d.config.socketPath);
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    // Containers keep running (live-restore): only the API and the database close.
    log.info(`${sig}: shutting down, containers keep running`);
    void api
      .close()
      .then(() => log.debug('API closed'))
      .then(() => d.stop())
      .then(() => {
        log.debug('state closed');
        process.exit(0);
      });
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function doctorArgs(argv: string[]): { root: string; execRoot: string } {
  const { values } = parseArgs({
    args: argv,
    options: { root: { type: 'string', default: '/var/lib/arca' }, 'exec-root': { type: 'string', default: '/run/arca' } },
    strict: true,
  });
  return { root: values.root!, execRoot: values['exec-root']! };
}

async function main(): Promise<void> {
  let argv = process.argv.slice(2);
  // A client's `-H` before the command, as docker takes it (the daemon's own -H follows `daemon`).
  let host: string | undefined;
  if ((argv[0] === '-H' || argv[0] === '--host') && argv.length > 1) [host, argv] = [argv[1], argv.slice(2)];
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'policy':
      process.exitCode = await runPolicy(rest, host);
      return;
    case 'network':
      process.exitCode = await runNetwork(rest, host);
      return;
    case 'daemon':
      return daemon(rest);
    case 'vm-net':
      process.exitCode = await runVmNet(rest);
      return;
    case 'version':
    case '--version':
      process.stdout.write(`arca version ${ARCA_VERSION}\n`);
      return;
    case 'doctor':
      process.exitCode = await runDoctor(doctorArgs(rest));
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`arca: unknown command "${cmd}"\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`arca: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
