/**
 * The IPAM contract: which subnets a network gets and which address each endpoint gets.
 *
 * Choosing pools is split from reading the host's routes so that the choice and the insertion of
 * the network row happen in one synchronous SQLite transaction: two concurrent `network create`
 * calls can never pick the same default pool. Address requests are synchronous for the same
 * reason; the UNIQUE (network_id, address) index is the last line of defence.
 */
import type { Prefix } from './ip-address.js';

/** One entry of Docker's `IPAM.Config`, as sent by the client. */
export interface IpamConfigEntry {
  Subnet?: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/** A subnet a network owns, resolved to concrete values. */
export interface IpamPool {
  family: 4 | 6;
  /** CIDR, masked: `172.18.0.0/16`. */
  subnet: string;
  /** Where dynamic addresses come from (`--ip-range`, or the subnet). */
  range: string;
  /** The gateway address (no prefix length). */
  gateway: string;
  /** `--aux-address` values by name. */
  aux: Record<string, string>;
  /** The user gave the subnet (static `--ip` is only allowed on such subnets, as in Docker). */
  userConfigured: boolean;
  /** The user gave the ip-range (inspect echoes it). */
  userRange: boolean;
  /** The user gave the gateway (inspect echoes it). */
  userGateway: boolean;
}

export interface PoolRequest {
  config: IpamConfigEntry[];
  ipv4: boolean;
  ipv6: boolean;
  /** Subnets of existing networks: user subnets overlapping them are refused, defaults skip them. */
  taken: Prefix[];
  /** Routes of the daemon's netns: default pools skip subnets that are already routed. */
  hostRoutes: Prefix[];
  /** A fixed default for the IPv4 pool (the predefined `bridge` takes 172.17.0.0/16). */
  defaultV4?: string;
}

export interface Ipam {
  /** Docker's IPAM driver name (`default`). */
  readonly name: string;
  /** Checks the user's config (Docker's texts); no side effects. Throws InvalidParameter. */
  validate(config: IpamConfigEntry[], enableIPv6: boolean): void;
  /** Routes in the daemon's netns, read once per network create. */
  hostRoutes(): Promise<Prefix[]>;
  /** Picks the pools for a new network. Synchronous and free of writes. */
  choosePools(req: PoolRequest): IpamPool[];
  /** Reserves the pools' gateways and aux addresses. Call inside the transaction creating the network. */
  reservePools(networkId: string, pools: IpamPool[]): void;
  /**
   * Takes an address for `owner` (an endpoint id): `wanted` when given (Forbidden "Address already
   * in use" when taken), else the lowest free one of the pool's range. Transactional.
   */
  requestAddress(networkId: string, pool: IpamPool, owner: string, wanted?: string): string;
  /** Frees everything `owner` holds on the network. */
  /** The address `owner` holds in the network (the first, by family order), if any. */
  addressOf(networkId: string, owner: string, family: 4 | 6): string | undefined;
  releaseOwner(networkId: string, owner: string): void;
  /** Frees every reservation of the network. */
  releaseNetwork(networkId: string): void;
}
