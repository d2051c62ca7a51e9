import type { Duplex } from 'node:stream';

/**
 * Docker's detach keys: the key sequence that, typed into an attached terminal, leaves the
 * container running and ends the session (ctrl-p ctrl-q unless `detachKeys` says otherwise).
 */

/** ctrl-p ctrl-q, Docker's default. */
export const DEFAULT_DETACH_KEYS: Buffer = Buffer.from([0x10, 0x11]);

/** `ctrl-@` is 0, `ctrl-a`..`ctrl-z` 1..26, then `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`, `ctrl-_`. */
const CTRL_KEYS = '@abcdefghijklmnopqrstuvwxyz[\\]^_';

/**
 * Parses Docker's detach key syntax (moby/term `ToBytes`): comma-separated keys, each a single
 * character (taken as it is), `ctrl-<c>` for c in `@a-z[\]^_` (lower case only), or `DEL`.
 * An empty text means the default. Returns undefined for text Docker rejects, so that each
 * endpoint can answer with its own message.
 */
export function parseDetachKeys(text: string | null | undefined): Buffer | undefined {
  if (!text) return DEFAULT_DETACH_KEYS;
  const codes: number[] = [];
  for (const key of text.split(',')) {
    const bytes = Buffer.from(key, 'utf8');
    if (bytes.length === 1) codes.push(bytes[0]!);
    else if (key === 'DEL') codes.push(127);
    else if (key.length === 6 && key.startsWith('ctrl-') && CTRL_KEYS.includes(key[5]!)) codes.push(CTRL_KEYS.indexOf(key[5]!));
    else return undefined;
  }
  return Buffer.from(codes);
}

/**
 * Watches a terminal's input for the detach keys. Bytes that may start the sequence are held
 * back (they must not reach the container if the sequence completes) and released as soon as
 * the sequence breaks; the sequence itself, and whatever follows it in the same chunk, is never
 * passed on. Unlike moby's proxy, which only matches keys read one byte at a time, the sequence
 * is found anywhere in a chunk, so API clients that write it in one piece detach too.
 */
export class DetachKeyFilter {
  private held = 0;
  private done = false;

  constructor(private readonly keys: Buffer = DEFAULT_DETACH_KEYS) {}

  /** True once the sequence was seen; later input is dropped. */
  get detached(): boolean {
    return this.done;
  }

  /** The bytes of `chunk` to pass on now (possibly with held bytes released first). */
  push(chunk: Buffer): Buffer {
    if (this.done || !this.keys.length) return this.done ? Buffer.alloc(0) : chunk;
    const out: number[] = [];
    const keys = this.keys;
    for (const b of chunk) {
      if (b === keys[this.held]) {
        this.held++;
        if (this.held === keys.length) {
          this.done = true;
          this.held = 0;
          break;
        }
        continue;
      }
      if (this.held === 0) {
        out.push(b);
        continue;
      }
      // The sequence broke: release held bytes until what is left (with b) could still start it.
      const pending = [...keys.subarray(0, this.held), b];
      let keep = 0;
      for (let n = Math.min(pending.length, keys.length - 1); n > 0; n--) {
        if (pending.slice(pending.length - n).every((x, i) => x === keys[i])) {
          keep = n;
          break;
        }
      }
      out.push(...pending.slice(0, pending.length - keep));
      this.held = keep;
    }
    return Buffer.from(out);
  }

  /** Input ended: the held bytes were not the sequence after all. */
  flush(): Buffer {
    const out = this.done ? Buffer.alloc(0) : Buffer.from(this.keys.subarray(0, this.held));
    this.held = 0;
    return out;
  }
}

/** Where a client's input goes (the stdin relay to conmon). */
export interface InputSink {
  write(b: Buffer): void;
  end(): void;
}

/**
 * Carries a hijacked client's input (`first`: bytes that came with the request) to `sink`,
 * watching for `keys` when given (sessions with a terminal). Once they are typed the input
 * stops, `sink` ends, and `onDetach` ends the session; the container's process keeps running.
 */
export function relayInput(socket: Duplex, first: Buffer, keys: Buffer | undefined, sink: InputSink, onDetach: () => void): void {
  const filter = keys ? new DetachKeyFilter(keys) : undefined;
  const feed = (b: Buffer): void => {
    const pass = filter ? filter.push(b) : b;
    if (pass.length) sink.write(pass);
    if (filter?.detached) {
      socket.off('data', feed);
      socket.on('data', () => {});
      sink.end();
      onDetach();
    }
  };
  if (first.length) feed(first);
  if (filter?.detached) return;
  socket.on('data', feed);
  socket.on('end', () => {
    if (filter?.detached) return;
    const rest = filter?.flush();
    if (rest?.length) sink.write(rest);
    sink.end();
  });
}
