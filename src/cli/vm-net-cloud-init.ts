import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  checkNames,
  networkOf,
  parseGuestAllow,
  parseIpv4Cidr,
  parseWgPeer,
  privateKeyOrNew,
  renderCloudInit,
  type CloudInitSpec,
} from '../vm/cloud-init.js';
import type { CliIo } from './policy.js';

export const VM_NET_CLOUD_INIT_USAGE = `Usage: arca vm-net cloud-init --wg-address CIDR --wg-peer PUBKEY@IP:PORT [OPTIONS]

Prints #cloud-config user-data for a VM whose only way out is WireGuard: it writes wg0.conf and a
default-deny nftables firewall (loopback, DHCP, the handshake to the peer and wg0 allowed), then
loads the firewall and starts wg-quick@wg0. The guest needs nftables and wireguard-tools.

  --wg-address CIDR          the guest's tunnel address, e.g. 10.99.0.2/24
  --wg-peer PUBKEY@IP:PORT   the peer's public key (base64) and endpoint as the guest sees it
  --wg-allowed-ips CIDR,...  what the tunnel routes (default: the network of --wg-address)
  --wg-private-key KEY       the guest's private key (base64; default: a new one from node:crypto)
  --keepalive SECONDS        PersistentKeepalive (default 25; 0: off)
  --allow IP[/N]:PORT[-PORT][/udp|tcp]   also allow this destination outside the tunnel (repeatable)
  --uplink NAME              the guest's NIC (default eth0)
  --hostname NAME            meta-data local-hostname (default arca-vm)
  --instance-id ID           meta-data instance-id (default: from a digest of the user-data)
  --out-dir DIR              write DIR/user-data (0600), DIR/meta-data and DIR/wg-public-key instead
                             of printing the user-data (NoCloud's file names, for cloud-localds)
The guest's public key goes to stderr (the peer needs it).
`;

/** `arca vm-net cloud-init`; returns the exit status. */
export function runVmNetCloudInit(argv: string[], io: CliIo): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'wg-address': { type: 'string' },
        'wg-peer': { type: 'string' },
        'wg-allowed-ips': { type: 'string' },
        'wg-private-key': { type: 'string' },
        keepalive: { type: 'string', default: '25' },
        allow: { type: 'string', multiple: true, default: [] },
        uplink: { type: 'string', default: 'eth0' },
        hostname: { type: 'string', default: 'arca-vm' },
        'instance-id': { type: 'string' },
        'out-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`arca vm-net cloud-init: ${(err as Error).message}\n\n${VM_NET_CLOUD_INIT_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(VM_NET_CLOUD_INIT_USAGE);
    return 0;
  }
  try {
    if (values['wg-address'] === undefined || values['wg-peer'] === undefined) {
      io.err(`arca vm-net cloud-init: --wg-address and --wg-peer are required\n\n${VM_NET_CLOUD_INIT_USAGE}`);
      return 2;
    }
    const wgAddress = parseIpv4Cidr(values['wg-address'], '--wg-address');
    const allowedIps = values['wg-allowed-ips']
      ? values['wg-allowed-ips'].split(',').map((c) => networkOf(parseIpv4Cidr(c.trim(), '--wg-allowed-ips', 32)))
      : [networkOf(wgAddress)];
    const keepaliveText = values.keepalive!;
    const spec: CloudInitSpec = {
      wgAddress,
      peer: parseWgPeer(values['wg-peer']),
      privateKey: privateKeyOrNew(values['wg-private-key']),
      allowedIps,
      allow: values.allow!.map(parseGuestAllow),
      keepalive: /^[0-9]{1,5}$/.test(keepaliveText) ? Number(keepaliveText) : NaN,
      uplink: values.uplink!,
      hostname: values.hostname!,
      ...(values['instance-id'] !== undefined ? { instanceId: values['instance-id'] } : {}),
    };
    if (Number.isNaN(spec.keepalive)) throw new Error(`invalid --keepalive "${keepaliveText}": seconds 0-65535 (0: off)`);
    checkNames(spec);
    const docs = renderCloudInit(spec);
    const outDir = values['out-dir'];
    if (outDir !== undefined) {
      mkdirSync(outDir, { recursive: true });
      // The user-data holds the guest's private key.
      writeFileSync(join(outDir, 'user-data'), docs.userData, { mode: 0o600 });
      chmodSync(join(outDir, 'user-data'), 0o600);
      writeFileSync(join(outDir, 'meta-data'), docs.metaData, { mode: 0o644 });
      writeFileSync(join(outDir, 'wg-public-key'), docs.publicKey + '\n', { mode: 0o644 });
      io.err(`wrote ${join(outDir, 'user-data')}, ${join(outDir, 'meta-data')}\n`);
    } else {
      io.out(docs.userData);
    }
    io.err(`guest public key: ${docs.publicKey}\n`);
    return 0;
  } catch (err) {
    io.err(`arca vm-net cloud-init: ${(err as Error).message}\n`);
    return 1;
  }
}
