/**
 * What the driver must remember across daemon restarts and wireguard-go restarts: each
 * endpoint's key pair, underlay address and listen port, and the overlay addresses its peers
 * route to it. Private keys live only here, so the file is mode 0600 and written by rename (a
 * crash leaves the old file or the new one, never half of either).
 *
 * A record is written before any kernel object of its endpoint exists: a crash between creating
 * the tunnel and recording it cannot happen, and a record without objects is made whole by the
 * next reapply or removed by the sweep.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { logger } from '../../../log.js';
import { parseCidr } from '../../firewall/nftables/address-ranges.js';
import { generateKeyPair } from './wg-keys.js';
import { LISTEN_PORT, UNDERLAY_HOST_ADDRESS, UNDERLAY_POOL } from './wg-names.js';

const log = logger('arca:net:wireguard');

export interface WgEndpointRecord {
  endpointId: string;
  networkId: string;
  /** Hex. */
  privateKey: string;
  publicKey: string;
  /** This endpoint's underlay address (bare IPv4, a /32 of the pool). */
  underlay: string;
  listenPort: number;
  /** Overlay addresses, bare: what peers put in allowed-ips. */
  addresses: string[];
}

interface StateFile {
  version: 1;
  endpoints: WgEndpointRecord[];
}

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export class WgState {
  private readonly recs = new Map<string, WgEndpointRecord>();

  constructor(private readonly file: string) {
    let parsed: StateFile | undefined;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8')) as StateFile;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.error('wireguard state unreadable; starting empty', { file, error: String(e) });
    }
    for (const r of parsed?.endpoints ?? []) this.recs.set(r.endpointId, r);
  }

  get(endpointId: string): WgEndpointRecord | undefined {
    return this.recs.get(endpointId);
  }

  all(): WgEndpointRecord[] {
    return [...this.recs.values()];
  }

  ofNetwork(networkId: string): WgEndpointRecord[] {
    return this.all().filter((r) => r.networkId === networkId);
  }

  /** The endpoint's record, made (keys, underlay address) and saved when missing; addresses refreshed. */
  ensure(endpointId: string, networkId: string, addresses: string[]): WgEndpointRecord {
    let r = this.recs.get(endpointId);
    if (r && r.networkId === networkId && sameList(r.addresses, addresses)) return r;
    if (r) r = { ...r, networkId, addresses: [...addresses] };
    else {
      const keys = generateKeyPair();
      r = { endpointId, networkId, ...keys, underlay: this.freeUnderlay(), listenPort: LISTEN_PORT, addresses: [...addresses] };
    }
    this.recs.set(endpointId, r);
    this.save();
    return r;
  }

  update(endpointId: string, patch: Partial<Pick<WgEndpointRecord, 'listenPort'>>): WgEndpointRecord | undefined {
    const r = this.recs.get(endpointId);
    if (!r) return undefined;
    const next = { ...r, ...patch };
    this.recs.set(endpointId, next);
    this.save();
    return next;
  }

  remove(endpointId: string): void {
    if (this.recs.delete(endpointId)) this.save();
  }

  private freeUnderlay(): string {
    const { range } = parseCidr(UNDERLAY_POOL);
    const first = Number(range.from) + 1;
    const last = Number(range.to) - 1;
    const taken = new Set([...this.recs.values()].map((r) => r.underlay));
    taken.add(UNDERLAY_HOST_ADDRESS);
    for (let n = first; n <= last; n++) {
      const a = intToIpv4(n);
      if (!taken.has(a)) return a;
    }
    throw new Error(`the wireguard underlay ${UNDERLAY_POOL} is full`);
  }

  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    const body: StateFile = { version: 1, endpoints: this.all().sort((a, b) => ipv4ToInt(a.underlay) - ipv4ToInt(b.underlay)) };
    writeFileSync(tmp, JSON.stringify(body, null, 1) + "\n", { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
  }
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
