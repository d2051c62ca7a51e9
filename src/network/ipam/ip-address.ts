/**
 * IPv4 and IPv6 addresses and prefixes as bigints: parsing, canonical formatting (RFC 5952 for
 * IPv6), containment and overlap. Pure functions, no I/O.
 */

export type Family = 4 | 6;

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function familyBits(f: Family): number {
  return BITS[f];
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    // Leading zeros are refused, as Go's netip does (they read as octal elsewhere).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (s.includes('%')) return undefined;
  let head = s;
  let tailV4: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return undefined;
  const groups = (x: string): string[] | undefined => (x === '' ? [] : x.split(':'));
  const left = groups(dbl[0]!);
  const right = dbl.length === 2 ? groups(dbl[1]!) : [];
  if (!left || !right) return undefined;
  const total = left.length + right.length;
  if (dbl.length === 1 && total !== 8) return undefined;
  if (dbl.length === 2 && total > 7) return undefined;
  const all = [...left, ...Array(8 - total).fill('0'), ...right];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses an IPv4 or IPv6 address; undefined when malformed. */
export function parseIp(s: string): IpAddress | undefined {
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function formatIp(a: IpAddress): string {
  if (a.family === 4) {
    const v = a.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run of two or more zero groups (the first one on a tie).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function ipEquals(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

/** A CIDR prefix: an address (not necessarily masked) and a length. */
export class Prefix {
  constructor(
    readonly addr: IpAddress,
    readonly bits: number,
  ) {}

  /** Parses `a.b.c.d/n` or `x::/n`; undefined when malformed. */
  static parse(s: string): Prefix | undefined {
    const i = s.indexOf('/');
    if (i < 0) return undefined;
    const addr = parseIp(s.slice(0, i));
    const lenText = s.slice(i + 1);
    if (!addr || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
    const bits = Number(lenText);
    if (bits > familyBits(addr.family)) return undefined;
    return new Prefix(addr, bits);
  }

  get family(): Family {
    return this.addr.family;
  }

  private get hostBits(): bigint {
    return BigInt(familyBits(this.family) - this.bits);
  }

  /** The same prefix with the host bits cleared. */
  masked(): Prefix {
    return new Prefix({ family: this.family, value: (this.addr.value >> this.hostBits) << this.hostBits }, this.bits);
  }

  isMasked(): boolean {
    return this.masked().addr.value === this.addr.value;
  }

  first(): IpAddress {
    return this.masked().addr;
  }

  last(): IpAddress {
    return { family: this.family, value: this.first().value + (1n << this.hostBits) - 1n };
  }

  size(): bigint {
    return 1n << this.hostBits;
  }

  contains(a: IpAddress): boolean {
    return a.family === this.family && a.value >= this.first().value && a.value <= this.last().value;
  }

  overlaps(p: Prefix): boolean {
    if (p.family !== this.family) return false;
    return this.first().value <= p.last().value && p.first().value <= this.last().value;
  }

  /** The n-th address of the prefix (0 = network address). */
  nth(n: bigint): IpAddress {
    return { family: this.family, value: this.first().value + n };
  }

  toString(): string {
    return `${formatIp(this.addr)}/${this.bits}`;
  }

  equals(p: Prefix): boolean {
    return p.family === this.family && p.bits === this.bits && p.addr.value === this.addr.value;
  }
}
