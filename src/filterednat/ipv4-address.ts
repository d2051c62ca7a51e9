/** IPv4 addresses as unsigned 32-bit numbers: the hot path compares numbers, never strings. */

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Strict dotted quad: four decimal octets, no leading zeros (`010.0.0.1` means 8.0.0.1 to
 * inet_aton and 10.0.0.1 to a person, so neither is guessed).
 */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export const isLoopback = (ip: number): boolean => ip >>> 24 === 127;
export const isMulticastOrReserved = (ip: number): boolean => ip >>> 28 >= 0xe;
export const isThisNetwork = (ip: number): boolean => ip >>> 24 === 0;
