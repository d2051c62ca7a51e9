import { readFileSync } from 'node:fs';
import type { CliIo } from './policy.js';
import { runVmNetCloudInit, VM_NET_CLOUD_INIT_USAGE } from './vm-net-cloud-init.js';
import { runVmNetServe, VM_NET_SERVE_USAGE } from './vm-net-serve.js';

const VM_NET_USAGE = `Usage: arca vm-net COMMAND

Commands:
  serve        Run FilteredNAT for one VM's NIC (QEMU -netdev stream,server=on) in the foreground
  cloud-init   Print cloud-init user-data for a guest whose only way out is WireGuard

${VM_NET_SERVE_USAGE}
${VM_NET_CLOUD_INIT_USAGE}`;

const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: () => readFileSync(0, 'utf8'),
};

/** `arca vm-net SUBCOMMAND ...`; returns the exit status. */
export async function runVmNet(argv: string[], io: CliIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'serve':
      return runVmNetServe(rest);
    case 'cloud-init':
      return runVmNetCloudInit(rest, io);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(VM_NET_USAGE);
      return 0;
    default:
      io.err(`arca vm-net: unknown command "${sub}"\n\n${VM_NET_USAGE}`);
      return 2;
  }
}
