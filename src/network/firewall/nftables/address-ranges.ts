/**
 * Address arithmetic for nft interval sets: a policy peer is "these CIDRs minus their holes, plus
 * these addresses", and an interval set wants non-overlapping elements. Pure, IPv4 and IPv6.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidParameter } from '../../../errors.js';

export type Family = 4 | 6;

/** Inclusive range of addresses of one family, as integers. */
export interface AddrRange {
  from: bigint;
  to: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function familyOf(addr: string): Family | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

export function parseAddress(addr: string): { fam: Family; value: bigint } {
  if (isIPv4(addr)) {
    const v = addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { fam: 4, value: v };
  }
  if (isIPv6(addr)) {
    let text = addr.split('%')[0]!;
    // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (v4) {
      const n = parseAddress(v4[1]!).value;
      text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
    }
    const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
    const h = head ? head.split(':') : [];
    const t = tail === undefined ? [] : tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return { fam: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  }
  throw new InvalidParameter(`invalid address "${addr}"`);
}

export function formatAddress(fam: Family, v: bigint): string {
  if (fam === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  const groups = [...Array(8).keys()].map((i) => (v >> BigInt((7 - i) * 16)) & 0xffffn);
  // RFC 5952: compress the longest run (≥ 2) of zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0n) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** `10.0.0.0/8` → its range; a bare address is a /32 or /128. Host bits are masked off. */
export function parseCidr(cidr: string): { fam: Family; range: AddrRange } {
  const [addr, len, ...rest] = cidr.split('/');
  const { fam, value } = parseAddress(addr ?? '');
  const bits = BITS[fam];
  const n = len === undefined ? bits : Number(len);
  if (rest.length || (len !== undefined && !/^[0-9]+$/.test(len)) || n > bits) throw new InvalidParameter(`invalid CIDR "${cidr}"`);
  const host = (1n << BigInt(bits - n)) - 1n;
  const from = value & ~host & ((1n << BigInt(bits)) - 1n);
  return { fam, range: { from, to: from | host } };
}

/** Sorted, merged (overlapping and adjacent ranges joined). */
export function mergeRanges(ranges: AddrRange[]): AddrRange[] {
  const sorted = [...ranges].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const out: AddrRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1n) {
      if (r.to > last.to) last.to = r.to;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** `ranges` minus `holes`; both merged first. */
export function subtractRanges(ranges: AddrRange[], holes: AddrRange[]): AddrRange[] {
  let out = mergeRanges(ranges);
  for (const h of mergeRanges(holes)) {
    const next: AddrRange[] = [];
    for (const r of out) {
      if (h.to < r.from || h.from > r.to) {
        next.push(r);
        continue;
      }
      if (h.from > r.from) next.push({ from: r.from, to: h.from - 1n });
      if (h.to < r.to) next.push({ from: h.to + 1n, to: r.to });
    }
    out = next;
  }
  return out;
}

/** nft set elements for merged ranges: `a`, `a/len` when the range is a prefix, else `a-b`. */
export function rangeElements(fam: Family, ranges: AddrRange[]): string[] {
  const bits = BITS[fam];
  return ranges.map((r) => {
    if (r.from === r.to) return formatAddress(fam, r.from);
    const size = r.to - r.from + 1n;
    const isPow2 = (size & (size - 1n)) === 0n;
    if (isPow2 && (r.from & (size - 1n)) === 0n) {
      const len = bits - (size.toString(2).length - 1);
      return `${formatAddress(fam, r.from)}/${len}`;
    }
    return `${formatAddress(fam, r.from)}-${formatAddress(fam, r.to)}`;
  });
}

/** The fewest CIDRs covering exactly `ranges` (where a consumer has prefixes but no ranges, OVN). */
export function rangeCidrs(fam: Family, ranges: AddrRange[]): string[] {
  const bits = BITS[fam];
  const out: string[] = [];
  for (const r of mergeRanges(ranges)) {
    let from = r.from;
    while (from <= r.to) {
      // The largest block aligned at `from` that does not run past the range.
      let len = bits;
      while (len > 0) {
        const size = 1n << BigInt(bits - len + 1);
        if ((from & (size - 1n)) !== 0n || from + size - 1n > r.to) break;
        len--;
      }
      out.push(`${formatAddress(fam, from)}/${len}`);
      from += 1n << BigInt(bits - len);
    }
  }
  return out;
}
