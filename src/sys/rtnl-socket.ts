import type { NativeHelpers } from './native.js';
import {
  message,
  NetlinkError,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseError,
  splitReplies,
  type Attr,
  type Reply,
} from './netlink.js';

/** One message of a request, and which refusals count as success for it. */
export interface NlOp {
  type: number;
  /** Extra flags (NLM_F_CREATE, NLM_F_REPLACE, NLM_F_DUMP, …); NLM_F_ACK is added for non-dumps. */
  flags?: number;
  fixed: Buffer;
  attrs?: Attr[];
  /** For messages: `link add br-x`. */
  what: string;
  /** Errno names (`EEXIST`, `ENODEV`, `ESRCH`) that mean "already so". */
  ok?: readonly string[];
}

/**
 * A NETLINK_ROUTE socket in one namespace. Requests on it are serialised (replies are matched by
 * arrival); each request may carry several messages, which the kernel handles in order, in one
 * round trip.
 */
export class RtnlSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly n: NativeHelpers,
    private readonly fd: number,
  ) {}

  /** Opens a socket in the namespace at `nsPath` (the daemon's own when omitted). */
  static open(n: NativeHelpers, nsPath?: string): RtnlSocket {
    return new RtnlSocket(n, n.netlinkOpen(nsPath ?? null));
  }

  /**
   * Sends `ops` in one datagram. Resolves with each op's data replies (dump entries or the echo
   * of a GET); rejects with the first refusal not listed in that op's `ok`.
   */
  request(ops: readonly NlOp[]): Promise<Reply[][]> {
    const run = this.tail.then(() => this.send(ops));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async send(ops: readonly NlOp[]): Promise<Reply[][]> {
    if (this.closed) throw new Error('netlink socket closed');
    const seqs: number[] = [];
    const bufs = ops.map((op) => {
      this.seq = (this.seq + 1) >>> 0;
      seqs.push(this.seq);
      const dump = ((op.flags ?? 0) & NLM_F_DUMP) === NLM_F_DUMP;
      return message(op.type, (op.flags ?? 0) | (dump ? 0 : NLM_F_ACK), this.seq, op.fixed, op.attrs);
    });
    const raw = await this.n.netlinkRequest(this.fd, Buffer.concat(bufs), ops.length);
    const out: Reply[][] = ops.map(() => []);
    let failure: NetlinkError | undefined;
    for (const r of splitReplies(raw)) {
      const i = seqs.indexOf(r.seq);
      if (i < 0) continue; // a late answer to an earlier, abandoned request
      if (r.type === NLMSG_DONE) continue;
      if (r.type === NLMSG_ERROR) {
        const e = parseError(r.payload);
        if (e.errno === 0) continue;
        const err = new NetlinkError(ops[i]!.what, -e.errno, e.text);
        if (!ops[i]!.ok?.includes(err.code) && !failure) failure = err;
        continue;
      }
      out[i]!.push(r);
    }
    if (failure) throw failure;
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.n.closeFd(this.fd);
  }
}
