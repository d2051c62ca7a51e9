import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { Forbidden, InvalidParameter } from '../../../errors.js';
import { readFile } from 'node:fs/promises';
import { Unavailable } from '../../network-errors.js';
import { type IpAddress, Prefix, formatIp, parseIp } from '../ip-address.js';
import type { Ipam, IpamConfigEntry, IpamPool, PoolRequest } from '../ipam.js';

/** Reserved for the predefined `bridge` network. */
export const DEFAULT_BRIDGE_SUBNET = '172.17.0.0/16';

/**
 * Docker's default local pools for user networks: 172.18–31.0.0/16, then 192.168.0.0/16 cut in
 * /20s (moby `ipamutils`). 172.17.0.0/16 is left to the predefined bridge.
 */
export function defaultV4Pools(): Prefix[] {
  const out: Prefix[] = [];
  for (let b = 18; b <= 31; b++) out.push(Prefix.parse(`172.${b}.0.0/16`)!);
  for (let c = 0; c < 256; c += 16) out.push(Prefix.parse(`192.168.${c}.0/20`)!);
  return out;
}

const OVERLAP = 'invalid pool request: Pool overlaps with other one on this address space';

/** `*`-bulleted list, as moby's multierror prints it. */
function joinErrors(errs: string[]): string {
  return '* ' + errs.map((e) => e.replace(/\n/g, '\n\t')).join('\n* ');
}

function familyName(f: 4 | 6): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/**
 * The `default` IPAM driver: pools chosen from Docker's defaults (or the user's), addresses kept in
 * the `ipam_addresses` table. All writes are synchronous SQLite statements, so a transaction
 * around them is atomic with respect to every other request in the daemon.
 */
export class DefaultIpam implements Ipam {
  readonly name = 'default';

  constructor(private readonly db: Database.Database) {}

  validate(config: IpamConfigEntry[], enableIPv6: boolean): void {
    const errs: string[] = [];
    for (const cfg of config) {
      const subnetText = cfg.Subnet ?? '';
      const subnet = Prefix.parse(subnetText);
      if (!subnet) {
        errs.push(`invalid subnet ${subnetText}: invalid CIDR block notation`);
        continue;
      }
      if (subnet.family === 6 && !enableIPv6) continue;
      if (!subnet.isMasked()) errs.push(`invalid subnet ${subnet}: it should be ${subnet.masked()}`);
      const fam = familyName(subnet.family);
      if (cfg.IPRange) {
        const r = Prefix.parse(cfg.IPRange);
        if (!r) errs.push(`invalid ip-range ${cfg.IPRange}: invalid CIDR block notation`);
        else if (r.family !== subnet.family) errs.push(`invalid ip-range ${cfg.IPRange}: parent subnet is an ${fam} block`);
        else {
          if (r.bits < subnet.bits) errs.push(`invalid ip-range ${cfg.IPRange}: CIDR block is bigger than its parent subnet ${subnet}`);
          if (!r.isMasked()) errs.push(`invalid ip-range ${r}: it should be ${r.masked()}`);
          if (!subnet.masked().overlaps(r)) errs.push(`invalid ip-range ${cfg.IPRange}: parent subnet ${subnet} doesn't contain ip-range`);
        }
      }
      const addrErr = (text: string | undefined): string | undefined => {
        if (!text) return undefined;
        const a = parseIp(text);
        if (!a) return 'invalid address';
        if (a.family !== subnet.family) return `parent subnet is an ${fam} block`;
        if (!subnet.contains(a)) return `parent subnet ${subnet} doesn't contain this address`;
        return undefined;
      };
      const g = addrErr(cfg.Gateway);
      if (g) errs.push(`invalid gateway ${cfg.Gateway}: ${g}`);
      for (const [name, aux] of Object.entries(cfg.AuxiliaryAddresses ?? {})) {
        const e = addrErr(aux);
        if (e) errs.push(`invalid auxiliary address ${name}: ${e}`);
      }
    }
    if (errs.length) throw new InvalidParameter(`invalid network config:\n${joinErrors(errs)}`);
  }

  /**
   * Routes of the daemon's network namespace, read from /proc/net/route and /proc/net/ipv6_route
   * (the process's own namespace, no exec). Default routes, link-local, multicast and loopback
   * entries say nothing about which private pools are free and are left out.
   */
  async hostRoutes(): Promise<Prefix[]> {
    const out: Prefix[] = [];
    const v4 = await readFile('/proc/net/route', 'utf8').catch(() => '');
    for (const line of v4.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 8 || f[0] === 'lo') continue;
      const dst = leHex(f[1]!);
      const mask = leHex(f[7]!);
      if (dst === undefined || mask === undefined || mask === 0n) continue;
      let bits = 0;
      for (let m = mask; m & 0x80000000n; m = (m << 1n) & 0xffffffffn) bits++;
      out.push(new Prefix({ family: 4, value: dst }, bits).masked());
    }
    const v6 = await readFile('/proc/net/ipv6_route', 'utf8').catch(() => '');
    for (const line of v6.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[9] === 'lo') continue;
      const bits = parseInt(f[1]!, 16);
      if (!bits || !/^[0-9a-f]{32}$/.test(f[0]!)) continue;
      const p = new Prefix({ family: 6, value: BigInt(`0x${f[0]}`) }, bits).masked();
      if (/^f[ef]/i.test(f[0]!)) continue;
      out.push(p);
    }
    return out;
  }

  choosePools(req: PoolRequest): IpamPool[] {
    const pools: IpamPool[] = [];
    const chosen: Prefix[] = [];
    const user = req.config.filter((c) => {
      const p = Prefix.parse(c.Subnet ?? '');
      return p && (p.family === 4 ? req.ipv4 : req.ipv6);
    });
    for (const cfg of user) {
      const subnet = Prefix.parse(cfg.Subnet!)!.masked();
      if ([...req.taken, ...chosen].some((t) => t.overlaps(subnet))) throw new Forbidden(OVERLAP);
      chosen.push(subnet);
      const range = cfg.IPRange ? Prefix.parse(cfg.IPRange)!.masked() : subnet;
      pools.push({
        family: subnet.family,
        subnet: subnet.toString(),
        range: range.toString(),
        gateway: cfg.Gateway ? formatIp(parseIp(cfg.Gateway)!) : formatIp(subnet.nth(1n)),
        aux: Object.fromEntries(Object.entries(cfg.AuxiliaryAddresses ?? {}).map(([k, v]) => [k, formatIp(parseIp(v)!)])),
        userConfigured: true,
        userRange: Boolean(cfg.IPRange),
        userGateway: Boolean(cfg.Gateway),
      });
    }
    const auto = (subnet: Prefix): IpamPool => ({
      family: subnet.family,
      subnet: subnet.toString(),
      range: subnet.toString(),
      gateway: formatIp(subnet.nth(1n)),
      aux: {},
      userConfigured: false,
      userRange: false,
      userGateway: false,
    });
    const busy = (p: Prefix): boolean => [...req.taken, ...chosen, ...req.hostRoutes].some((t) => t.overlaps(p));
    if (req.ipv4 && !pools.some((p) => p.family === 4)) {
      if (req.defaultV4) {
        const p = Prefix.parse(req.defaultV4)!;
        if ([...req.taken, ...chosen].some((t) => t.overlaps(p))) throw new Forbidden(OVERLAP);
        pools.unshift(auto(p));
      } else {
        const p = defaultV4Pools().find((c) => !busy(c));
        if (!p) throw new Unavailable('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
        chosen.push(p);
        pools.unshift(auto(p));
      }
    }
    if (req.ipv6 && !pools.some((p) => p.family === 6)) {
      const ula = this.ulaPrefix();
      let found: Prefix | undefined;
      for (let i = 0; i < 0x10000 && !found; i++) {
        const p = Prefix.parse(`${ula}:${i.toString(16)}::/64`)!;
        if (!busy(p)) found = p;
      }
      if (!found) throw new Unavailable('could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network');
      pools.push(auto(found));
    }
    return pools;
  }

  /** The daemon's ULA /48 (`fdxx:xxxx:xxxx`), drawn once at random (RFC 4193) and kept. */
  private ulaPrefix(): string {
    const row = this.db.prepare("SELECT value FROM net_meta WHERE key = 'ula48'").get() as { value: string } | undefined;
    if (row) return row.value;
    const b = randomBytes(5).toString('hex');
    const v = `fd${b.slice(0, 2)}:${b.slice(2, 6)}:${b.slice(6, 10)}`;
    this.db.prepare("INSERT OR IGNORE INTO net_meta(key, value) VALUES ('ula48', ?)").run(v);
    return this.ulaPrefix();
  }

  reservePools(networkId: string, pools: IpamPool[]): void {
    const ins = this.db.prepare('INSERT INTO ipam_addresses(network_id, address, owner) VALUES (?, ?, ?)');
    for (const p of pools) {
      ins.run(networkId, p.gateway, 'gateway');
      for (const [name, a] of Object.entries(p.aux)) {
        if (a === p.gateway) continue;
        try {
          ins.run(networkId, a, `aux:${name}`);
        } catch (e) {
          if (!isUniqueViolation(e)) throw e;
        }
      }
    }
  }

  requestAddress(networkId: string, pool: IpamPool, owner: string, wanted?: string): string {
    const subnet = Prefix.parse(pool.subnet)!;
    const ins = this.db.prepare('INSERT INTO ipam_addresses(network_id, address, owner) VALUES (?, ?, ?)');
    if (wanted) {
      const a = parseIp(wanted);
      if (!a || !subnet.contains(a)) throw new InvalidParameter(`no configured subnet or ip-range contain the IP address ${wanted}`);
      const text = formatIp(a);
      try {
        ins.run(networkId, text, owner);
      } catch (e) {
        if (isUniqueViolation(e)) throw new Forbidden('Address already in use');
        throw e;
      }
      return text;
    }
    return this.db.transaction(() => {
      const taken = new Set(
        (this.db.prepare('SELECT address FROM ipam_addresses WHERE network_id = ?').all(networkId) as { address: string }[]).map((r) => r.address),
      );
      const range = Prefix.parse(pool.range)!;
      let lo = range.first().value;
      let hi = range.last().value;
      // The subnet's own address (and IPv4's broadcast) are never handed out.
      if (lo <= subnet.first().value) lo = subnet.first().value + 1n;
      if (subnet.family === 4 && subnet.bits <= 30 && hi >= subnet.last().value) hi = subnet.last().value - 1n;
      for (let v = lo; v <= hi; v++) {
        const text = formatIp({ family: subnet.family, value: v } as IpAddress);
        if (taken.has(text)) continue;
        ins.run(networkId, text, owner);
        return text;
      }
      throw new Unavailable(`no available ${familyName(subnet.family)} addresses on this network's address pools`);
    })();
  }

  addressOf(networkId: string, owner: string, family: 4 | 6): string | undefined {
    const rows = this.db.prepare('SELECT address FROM ipam_addresses WHERE network_id = ? AND owner = ?').all(networkId, owner) as { address: string }[];
    return rows.map((r) => r.address).find((a) => a.includes(':') === (family === 6));
  }

  releaseOwner(networkId: string, owner: string): void {
    this.db.prepare('DELETE FROM ipam_addresses WHERE network_id = ? AND owner = ?').run(networkId, owner);
  }

  releaseNetwork(networkId: string): void {
    this.db.prepare('DELETE FROM ipam_addresses WHERE network_id = ?').run(networkId);
  }
}

/** /proc/net/route writes IPv4 values as little-endian hex. */
function leHex(h: string): bigint | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(h)) return undefined;
  const b = h.match(/../g)!.reverse().join('');
  return BigInt(`0x${b}`);
}

function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
