import { EngineClient, engineMessage } from './engine-client.js';
import type { EgressView } from '../network/egress/egress-status.js';

export const NETWORK_USAGE = `Usage: arca [-H unix:///path] network egress NAME [--format json]

A deny network's egress allowlist (-o arca.egress=deny), the addresses each name currently
stands for (learnt from its containers' DNS answers, with the time they have left), and the
packets dropped.
`;

export interface NetworkCliIo {
  out(s: string): void;
  err(s: string): void;
}

const processIo: NetworkCliIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** The text `arca network egress` prints for a view. */
export function egressText(v: EgressView): string {
  const lines = [`Network:   ${v.Network} (${v.Id.slice(0, 12)})`, `Strategy:  ${v.Strategy}${v.Sample !== undefined ? ` (1 in ${v.Sample})` : ''}`, 'Allow:'];
  if (!v.Allow.length) lines.push('  (nothing outside the network)');
  for (const a of v.Allow) {
    if (a.Kind === 'cidr') {
      lines.push(`  ${a.Entry}`);
      continue;
    }
    const addrs = a.Addresses ?? [];
    lines.push(`  ${a.Entry}${addrs.length ? '' : '   (not resolved yet)'}`);
    for (const x of addrs) lines.push(`      ${x.Address}   expires in ${x.ExpiresInSeconds}s`);
  }
  lines.push(`Dropped:   ${v.Dropped.Packets} packets, ${v.Dropped.Bytes} bytes`);
  lines.push(`DNS/DoT dropped: ${v.DroppedDns.Packets} packets, ${v.DroppedDns.Bytes} bytes`);
  lines.push(`Learnt TTLs are clamped to ${v.TtlFloorSeconds}s..${v.TtlCeilingSeconds}s.`);
  return lines.join('\n') + '\n';
}

export async function runNetwork(argv: string[], host?: string, io: NetworkCliIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    io.out(NETWORK_USAGE);
    return 0;
  }
  if (sub !== 'egress') {
    io.err(`arca network: unknown command "${sub}"\n\n${NETWORK_USAGE}`);
    return 2;
  }
  const json = rest.includes('--format') && rest[rest.indexOf('--format') + 1] === 'json';
  const names = rest.filter((a, i) => a !== '--format' && rest[i - 1] !== '--format');
  if (names.length !== 1) {
    io.err(`arca network egress: want exactly one network\n\n${NETWORK_USAGE}`);
    return 2;
  }
  try {
    const r = await new EngineClient(host).call('GET', `/arca/v1/networks/${encodeURIComponent(names[0]!)}/egress`);
    if (r.status !== 200) {
      io.err(`Error response from daemon: ${engineMessage(r)}\n`);
      return 1;
    }
    io.out(json ? JSON.stringify(r.body, null, 2) + '\n' : egressText(r.body as EgressView));
    return 0;
  } catch (e) {
    io.err(`${(e as Error).message}\n`);
    return 1;
  }
}
