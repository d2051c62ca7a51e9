/**
 * cloud-init user-data and meta-data for a VM whose only way out is a WireGuard tunnel behind a
 * default-deny firewall (the guest side of FilteredNAT, whose typical allowlist is that one
 * WireGuard endpoint). Pure functions: parsing the CLI's words and rendering the documents.
 *
 * It uses `write_files` + `runcmd`, not cloud-init's `wireguard:` key: Debian 12's cloud-init
 * accepts that key in its schema, but its /etc/cloud/cloud.cfg runs the module in no stage, so the
 * key would be ignored without a word.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { Document, isSeq, stringify } from 'yaml';
import { InvalidParameter } from '../errors.js';
import { generateKeyPair, keyFromBase64, keyToBase64, publicKeyOf } from '../network/drivers/wireguard/wg-keys.js';

/** An IPv4 prefix, normalised (`10.99.0.2/24` keeps its host part in `address`). */
export interface Ipv4Cidr {
  address: string;
  prefix: number;
}

export interface WgPeer {
  /** base64, as wg shows it. */
  publicKey: string;
  endpointIp: string;
  endpointPort: number;
}

/** A destination the guest may reach outside the tunnel, on its own NIC. */
export interface GuestAllow {
  net: Ipv4Cidr;
  portLo: number;
  portHi: number;
  proto: 'udp' | 'tcp';
}

export interface CloudInitSpec {
  /** The guest's tunnel address with its prefix (wg-quick's Address). */
  wgAddress: Ipv4Cidr;
  peer: WgPeer;
  /** base64. */
  privateKey: string;
  /** What the tunnel routes (the peer's AllowedIPs); defaults to the network of wgAddress. */
  allowedIps: Ipv4Cidr[];
  /** Extra destinations outside the tunnel. */
  allow: GuestAllow[];
  keepalive: number;
  /** The NIC the handshake leaves through; DHCP is allowed on it too. */
  uplink: string;
  hostname: string;
  /** Defaults to a digest of the user-data, so a changed config is a new instance to cloud-init. */
  instanceId?: string;
}

export interface CloudInitDocuments {
  userData: string;
  metaData: string;
  /** The guest's public key (base64), what the peer needs. */
  publicKey: string;
  /** Rendered pieces, also inside userData (the tests check them with nft -c and wg setconf). */
  wgConf: string;
  nftablesConf: string;
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const HOSTNAME_RE = /^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/;

export function parseIpv4Cidr(s: string, what: string, defaultPrefix?: number): Ipv4Cidr {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const p = slash < 0 ? undefined : s.slice(slash + 1);
  if (!isIPv4(addr)) throw new InvalidParameter(`invalid ${what} "${s}": not an IPv4 address`);
  if (p === undefined) {
    if (defaultPrefix === undefined) throw new InvalidParameter(`invalid ${what} "${s}": expected ADDRESS/PREFIX`);
    return { address: addr, prefix: defaultPrefix };
  }
  if (!/^[0-9]{1,2}$/.test(p) || Number(p) > 32) throw new InvalidParameter(`invalid ${what} "${s}": prefix must be 0-32`);
  return { address: addr, prefix: Number(p) };
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
/** The network a CIDR lies in (`10.99.0.2/24` → `10.99.0.0/24`). */
export function networkOf(c: Ipv4Cidr): Ipv4Cidr {
  const size = 2 ** (32 - c.prefix);
  return { address: intToIp(Math.floor(ipToInt(c.address) / size) * size), prefix: c.prefix };
}
function cidrText(c: Ipv4Cidr): string {
  return `${c.address}/${c.prefix}`;
}
/** nft's form: a host as its bare address. */
function nftNet(c: Ipv4Cidr): string {
  return c.prefix === 32 ? c.address : cidrText(c);
}

function parsePort(s: string, what: string): number {
  if (!/^[0-9]{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw new InvalidParameter(`invalid ${what}: port "${s}" must be 1-65535`);
  return Number(s);
}

/** `PUBKEY@IP:PORT` (the key in base64, as `wg pubkey` prints it). */
export function parseWgPeer(s: string): WgPeer {
  const at = s.lastIndexOf('@');
  if (at < 0) throw new InvalidParameter(`invalid --wg-peer "${s}": expected PUBKEY@IP:PORT`);
  const key = s.slice(0, at);
  const ep = s.slice(at + 1);
  try {
    keyFromBase64(key);
  } catch {
    throw new InvalidParameter(`invalid --wg-peer "${s}": the public key is not 44 base64 characters (32 bytes)`);
  }
  const colon = ep.lastIndexOf(':');
  if (colon < 0 || !isIPv4(ep.slice(0, colon))) throw new InvalidParameter(`invalid --wg-peer "${s}": the endpoint must be IPv4:PORT`);
  return { publicKey: key, endpointIp: ep.slice(0, colon), endpointPort: parsePort(ep.slice(colon + 1), `--wg-peer "${s}"`) };
}

/** `IP[/PREFIX]:PORT[-PORT][/udp|/tcp]`, udp when the protocol is left out. */
export function parseGuestAllow(s: string): GuestAllow {
  const m = /^([0-9.]+(?:\/[0-9]{1,2})?):([0-9]{1,5})(?:-([0-9]{1,5}))?(?:\/(udp|tcp))?$/.exec(s);
  if (!m) throw new InvalidParameter(`invalid --allow "${s}": expected IP[/PREFIX]:PORT[-PORT][/udp|tcp]`);
  const net = networkOf(parseIpv4Cidr(m[1]!, `--allow "${s}" address`, 32));
  const portLo = parsePort(m[2]!, `--allow "${s}"`);
  const portHi = m[3] === undefined ? portLo : parsePort(m[3], `--allow "${s}"`);
  if (portHi < portLo) throw new InvalidParameter(`invalid --allow "${s}": port range is backwards`);
  return { net, portLo, portHi, proto: (m[4] as 'udp' | 'tcp' | undefined) ?? 'udp' };
}

/** A base64 private key, checked; or a fresh one. */
export function privateKeyOrNew(b64: string | undefined): string {
  if (b64 === undefined) return keyToBase64(generateKeyPair().privateKey);
  try {
    keyFromBase64(b64);
  } catch {
    throw new InvalidParameter('invalid --wg-private-key: expected 44 base64 characters (32 bytes)');
  }
  return b64;
}

export function checkNames(spec: Pick<CloudInitSpec, 'uplink' | 'hostname' | 'keepalive'>): void {
  if (!IFNAME_RE.test(spec.uplink)) throw new InvalidParameter(`invalid --uplink "${spec.uplink}": not an interface name`);
  if (!HOSTNAME_RE.test(spec.hostname)) throw new InvalidParameter(`invalid --hostname "${spec.hostname}": not a host name label`);
  if (!Number.isInteger(spec.keepalive) || spec.keepalive < 0 || spec.keepalive > 65535) {
    throw new InvalidParameter(`invalid --keepalive "${spec.keepalive}": seconds 0-65535 (0: off)`);
  }
}

/** wg-quick's config (Address is wg-quick's; `wg-quick strip` leaves what `wg setconf` takes). */
export function renderWgConf(spec: CloudInitSpec): string {
  const lines = [
    '# Written by arca vm-net cloud-init.',
    '[Interface]',
    `PrivateKey = ${spec.privateKey}`,
    `Address = ${cidrText(spec.wgAddress)}`,
    '',
    '[Peer]',
    `PublicKey = ${spec.peer.publicKey}`,
    `Endpoint = ${spec.peer.endpointIp}:${spec.peer.endpointPort}`,
    `AllowedIPs = ${spec.allowedIps.map(cidrText).join(', ')}`,
  ];
  if (spec.keepalive > 0) lines.push(`PersistentKeepalive = ${spec.keepalive}`);
  return lines.join('\n') + '\n';
}

function portText(a: GuestAllow): string {
  return a.portLo === a.portHi ? String(a.portLo) : `${a.portLo}-${a.portHi}`;
}

/**
 * The guest's firewall: one inet table, every hook dropping by default (IPv6 included). Out: loopback,
 * DHCP on the uplink, the WireGuard handshake to the peer's endpoint, anything into wg0, and the
 * extra allows; in: loopback, replies (conntrack), DHCP replies, anything from wg0.
 * `flush ruleset` first: the file is the guest's whole firewall, as Debian's nftables.service loads it.
 */
export function renderNftablesConf(spec: CloudInitSpec): string {
  const up = spec.uplink;
  const out = [
    `oif "lo" accept`,
    `oifname "${up}" udp sport 68 udp dport 67 accept comment "DHCP"`,
    `oifname "${up}" ip daddr ${spec.peer.endpointIp} udp dport ${spec.peer.endpointPort} accept comment "WireGuard to its peer"`,
    `oifname "wg0" accept`,
    ...spec.allow.map((a) => `oifname "${up}" ip daddr ${nftNet(a.net)} ${a.proto} dport ${portText(a)} accept`),
    `counter comment "denied"`,
  ];
  const inp = [
    `iif "lo" accept`,
    `ct state established,related accept`,
    `iifname "${up}" udp sport 67 udp dport 68 accept comment "DHCP"`,
    `iifname "wg0" accept`,
    `counter comment "denied"`,
  ];
  const chain = (name: string, hook: string, rules: string[]): string[] => [
    `  chain ${name} {`,
    `    type filter hook ${hook} priority filter; policy drop;`,
    ...rules.map((r) => `    ${r}`),
    '  }',
  ];
  return [
    '#!/usr/sbin/nft -f',
    '# Written by arca vm-net cloud-init: default deny; out only through WireGuard.',
    'flush ruleset',
    '',
    'table inet arca_guest {',
    ...chain('input', 'input', inp),
    ...chain('forward', 'forward', [`counter comment "denied"`]),
    ...chain('output', 'output', out),
    '}',
  ].join('\n') + '\n';
}

export const WG_CONF_PATH = '/etc/wireguard/wg0.conf';
export const NFT_CONF_PATH = '/etc/nftables.conf';

/** The user-data and meta-data documents. */
export function renderCloudInit(spec: CloudInitSpec): CloudInitDocuments {
  const wgConf = renderWgConf(spec);
  const nftablesConf = renderNftablesConf(spec);
  const config = {
    write_files: [
      // Quoted modes: YAML reads a bare 0600 as the integer 384, which the schema rejects.
      { path: NFT_CONF_PATH, owner: 'root:root', permissions: '0644', content: nftablesConf },
      { path: WG_CONF_PATH, owner: 'root:root', permissions: '0600', content: wgConf },
    ],
    runcmd: [
      // The firewall first, so the tunnel never comes up unguarded; both units are enabled so a
      // reboot (when cloud-init does not run runcmd again) brings the same state back.
      ['nft', '-f', NFT_CONF_PATH],
      ['systemctl', 'enable', 'nftables.service'],
      ['systemctl', 'enable', '--now', 'wg-quick@wg0.service'],
    ],
  };
  // A real serializer, never string templating: nothing in the values can become YAML structure.
  const doc = new Document(config);
  // Each command as a one-line [argv] (flow style): the same data, easier to read.
  const runcmd = doc.get('runcmd');
  if (isSeq(runcmd)) for (const item of runcmd.items) if (isSeq(item)) item.flow = true;
  const userData = '#cloud-config\n' + doc.toString({ lineWidth: 0 });
  const instanceId = spec.instanceId ?? `iid-arca-${createHash('sha256').update(userData).digest('hex').slice(0, 16)}`;
  const metaData = stringify({ 'instance-id': instanceId, 'local-hostname': spec.hostname }, { lineWidth: 0 });
  return { userData, metaData, publicKey: keyToBase64(publicKeyOf(keyFromBase64(spec.privateKey))), wgConf, nftablesConf };
}
