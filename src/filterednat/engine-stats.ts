import { DROP_REASONS, type DropReason } from './drop-reasons.js';

/** DHCP messages by type: the client's (in) and the server's answers (out). */
export interface DhcpCounters {
  discover: number;
  request: number;
  release: number;
  decline: number;
  inform: number;
  /** REQUESTs naming another server, and INFORMs: read, counted, not answered. */
  ignored: number;
  offer: number;
  ack: number;
  nak: number;
}

/**
 * One engine's counters, as the stats file shows them. Every frame from the guest is counted in
 * `framesIn` and in exactly one of `forwarded`, `arpReplies` (a request answered), the DHCP client
 * counters, or `dropped`, so those always add up to `framesIn`.
 */
export interface EngineStats {
  framesIn: number;
  framesOut: number;
  forwarded: number;
  repliesIn: number;
  dropped: Record<DropReason, number>;
  dhcp: DhcpCounters;
  arpReplies: number;
  /** Datagrams from a peer that could not go to the guest (no guest MAC yet, too big for the MTU, the VM not reading). */
  repliesDropped: { no_guest: number; too_big: number; backpressure: number };
  /** Host socket errors after the fact (ICMP unreachable reported on a later send, ...). */
  sendErrors: number;
  flowsOpen: number;
  flowsOpened: number;
  flowsExpired: number;
  /** Exceptions caught around one frame: a bug if ever non-zero; the frame counts as `bad_frame`. */
  internalErrors: number;
}

export function newEngineStats(): EngineStats {
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = 0;
  return {
    framesIn: 0,
    framesOut: 0,
    forwarded: 0,
    repliesIn: 0,
    dropped,
    dhcp: { discover: 0, request: 0, release: 0, decline: 0, inform: 0, ignored: 0, offer: 0, ack: 0, nak: 0 },
    arpReplies: 0,
    repliesDropped: { no_guest: 0, too_big: 0, backpressure: 0 },
    sendErrors: 0,
    flowsOpen: 0,
    flowsOpened: 0,
    flowsExpired: 0,
    internalErrors: 0,
  };
}

/** The DHCP messages the guest sent (each is one frame in). */
export const dhcpIn = (d: DhcpCounters): number => d.discover + d.request + d.release + d.decline + d.inform;

export const droppedTotal = (s: EngineStats): number => DROP_REASONS.reduce((n, r) => n + s.dropped[r], 0);
