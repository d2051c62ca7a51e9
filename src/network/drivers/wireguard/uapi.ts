/**
 * WireGuard's cross-platform UAPI (https://www.wireguard.com/xplatform/) over wireguard-go's unix
 * socket, from Node: no `wg` exec on the hot path. A `set` is not atomic (a bad line leaves the
 * earlier ones applied), so callers send complete, valid documents and check with `get`.
 */

/** One peer as the driver wants it. Keys hex. */
export interface WgPeerConfig {
  publicKey: string;
  /** `ip:port` or `[ip6]:port`. */
  endpoint?: string;
  /** CIDRs routed to this peer (WireGuard adds no kernel routes for them). */
  allowedIps: string[];
  /** Seconds; 0 or absent: off. */
  persistentKeepalive?: number;
}

/** A `set` document. */
export interface WgSetRequest {
  privateKey?: string;
  listenPort?: number;
  /** Drop every peer first (a full configuration). */
  replacePeers?: boolean;
  peers?: Array<
    WgPeerConfig & {
      /** Remove this peer (only publicKey matters then). */
      remove?: boolean;
      /** Replace the peer's allowed IPs instead of adding to them (default true). */
      replaceAllowedIps?: boolean;
    }
  >;
}

export interface WgPeerStatus {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive: number;
  /** Unix seconds of the latest handshake; 0: never. */
  lastHandshakeSec: number;
  rxBytes: number;
  txBytes: number;
}

export interface WgDeviceStatus {
  privateKey?: string;
  /** Absent when the device has no UDP socket (after a failed listen_port: port in use). */
  listenPort?: number;
  peers: WgPeerStatus[];
}

/** A UAPI error reply: `errno` as the kernel's positive number (wireguard-go sends it negative). */
export class UapiError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

/** The `set=1` text for `req` (ends with the blank line). Throws on invalid keys, ports, CIDRs. */
export function renderSet(req: WgSetRequest): string {
  void req;
  throw new Error('not implemented');
}

/** Parses a `get=1` reply (without or with the trailing `errno=0`). */
export function parseGet(text: string): WgDeviceStatus {
  void text;
  throw new Error('not implemented');
}

/** Sends one `set` to the socket at `path`; rejects with UapiError when errno ≠ 0, or with the socket error. */
export async function uapiSet(path: string, req: WgSetRequest, timeoutMs = 2000): Promise<void> {
  void path;
  void req;
  void timeoutMs;
  throw new Error('not implemented');
}

/** One `get`. */
export async function uapiGet(path: string, timeoutMs = 2000): Promise<WgDeviceStatus> {
  void path;
  void timeoutMs;
  throw new Error('not implemented');
}
