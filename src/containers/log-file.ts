import { open, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';

/** One entry of conmon's k8s-file log: `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>`. */
export interface LogEntry {
  /** RFC3339Nano in UTC with `Z`, as Docker prints timestamps. */
  time: string;
  /** Seconds since the epoch, with fraction, for `since`/`until`. */
  epoch: number;
  stream: 'stdout' | 'stderr';
  /** The bytes, with the newline restored for full lines. */
  data: Buffer;
}

/** Parses one log line (without its newline). Returns undefined for a line that is not an entry. */
export function parseLogLine(line: Buffer): LogEntry | undefined {
  const s1 = line.indexOf(0x20);
  if (s1 < 0) return undefined;
  const s2 = line.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const s3 = line.indexOf(0x20, s2 + 1);
  const ts = line.subarray(0, s1).toString();
  const stream = line.subarray(s1 + 1, s2).toString();
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = s3 < 0 ? line.subarray(s2 + 1).toString() : line.subarray(s2 + 1, s3).toString();
  const body = s3 < 0 ? Buffer.alloc(0) : line.subarray(s3 + 1);
  const full = tag.split(':')[0] !== 'P';
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d|Z)$/.exec(ts);
  let epoch = 0;
  let time = ts;
  if (m) {
    const base = Date.parse(m[1]! + (m[3] === '+00:00' ? 'Z' : m[3]!)) / 1000;
    const frac = m[2] ? Number(m[2]) : 0;
    epoch = base + frac;
    time = m[3] === '+00:00' || m[3] === 'Z' ? `${m[1]}${m[2] ?? ''}Z` : ts;
  }
  return { time, epoch, stream, data: full ? Buffer.concat([body, Buffer.from('\n')]) : Buffer.from(body) };
}

/** Splits a buffer into complete lines; returns them and the unfinished rest. */
function splitLines(buf: Buffer): { lines: Buffer[]; rest: Buffer } {
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break;
    lines.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  return { lines, rest: buf.subarray(start) };
}

/** Reads every entry of a log file. */
export async function readLog(path: string): Promise<{ entries: LogEntry[]; offset: number }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return { entries: [], offset: 0 };
  }
  try {
    const st = await fh.stat();
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    const { lines, rest } = splitLines(buf.subarray(0, bytesRead));
    const entries = lines.map(parseLogLine).filter((e): e is LogEntry => e !== undefined);
    return { entries, offset: bytesRead - rest.length };
  } finally {
    await fh.close();
  }
}

/**
 * Follows a log file from an offset, calling `onEntry` for each new entry, until `stop()`.
 * `drain()` reads whatever is left (called once the container exited, before closing).
 */
export class LogFollower {
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private reading = false;
  private again = false;
  private rest = Buffer.alloc(0);
  private stopped = false;

  constructor(
    private readonly path: string,
    private offset: number,
    private readonly onEntry: (e: LogEntry) => void,
  ) {}

  start(): void {
    try {
      this.watcher = watch(this.path, () => void this.read());
      this.watcher.on('error', () => {});
    } catch {
      /* no file yet: the poll below catches up */
    }
    // inotify can miss a truncate/recreate; a slow poll is the safety net.
    this.timer = setInterval(() => void this.read(), 250);
    this.timer.unref();
    void this.read();
  }

  async drain(): Promise<void> {
    while (this.reading) await new Promise((r) => setTimeout(r, 2));
    await this.read();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  private async read(): Promise<void> {
    if (this.stopped) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        let size: number;
        try {
          size = (await stat(this.path)).size;
        } catch {
          return;
        }
        if (size < this.offset) this.offset = 0;
        if (size === this.offset) continue;
        const fh = await open(this.path, 'r');
        try {
          const buf = Buffer.alloc(size - this.offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
          this.offset += bytesRead;
          const { lines, rest } = splitLines(Buffer.concat([this.rest, buf.subarray(0, bytesRead)]));
          this.rest = Buffer.from(rest);
          for (const l of lines) {
            const e = parseLogLine(l);
            if (e && !this.stopped) this.onEntry(e);
          }
        } finally {
          await fh.close();
        }
      } while (this.again);
    } finally {
      this.reading = false;
    }
  }
}

/** Docker's 8-byte multiplexed frame header + payload (stream 1 = stdout, 2 = stderr). */
export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}
