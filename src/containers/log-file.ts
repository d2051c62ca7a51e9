import { open, stat, type FileHandle } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { logFiles } from './log-rotator.js';

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

/** Reads every entry of a log file, its rotated files (`<path>.N` … `<path>.1`) first. */
export async function readLog(path: string): Promise<{ entries: LogEntry[]; offset: number }> {
  const entries: LogEntry[] = [];
  let offset = 0;
  for (const file of logFiles(path)) {
    let fh;
    try {
      fh = await open(file, 'r');
    } catch {
      continue;
    }
    try {
      const st = await fh.stat();
      const buf = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(buf, 0, st.size, 0);
      const { lines, rest } = splitLines(buf.subarray(0, bytesRead));
      for (const l of lines) {
        const e = parseLogLine(l);
        if (e) entries.push(e);
      }
      if (file === path) offset = bytesRead - rest.length;
    } finally {
      await fh.close();
    }
  }
  return { entries, offset };
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
  /** The file being read, held open so a rotation (rename) cannot take its last lines away. */
  private fh?: FileHandle;
  private ino?: number;

  constructor(
    private readonly path: string,
    private offset: number,
    private readonly onEntry: (e: LogEntry) => void,
  ) {}

  start(): void {
    this.watchPath();
    // inotify can miss a truncate/recreate; a slow poll is the safety net.
    this.timer = setInterval(() => void this.read(), 250);
    this.timer.unref();
    void this.read();
  }

  private watchPath(): void {
    this.watcher?.close();
    try {
      this.watcher = watch(this.path, () => void this.read());
      this.watcher.on('error', () => {});
    } catch {
      /* no file yet: the poll catches up */
    }
  }

  async drain(): Promise<void> {
    while (this.reading) await new Promise((r) => setTimeout(r, 2));
    await this.read();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (!this.reading) this.closeFile();
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
        if (!this.fh) {
          try {
            this.fh = await open(this.path, 'r');
            this.ino = (await this.fh.stat()).ino;
          } catch {
            this.fh = undefined;
            return;
          }
        }
        await this.readToEnd(this.fh);
        // Rotated (json-file max-size): the path names a new file. What the old one got before
        // the writer moved on is read above; go on from the start of the new one.
        let ino: number | undefined;
        try {
          ino = (await stat(this.path)).ino;
        } catch {
          /* between rename and recreate */
        }
        if (ino !== undefined && ino !== this.ino && !this.stopped) {
          await this.readToEnd(this.fh);
          await this.fh.close().catch(() => {});
          this.fh = undefined;
          this.offset = 0;
          this.rest = Buffer.alloc(0);
          this.again = true;
          this.watchPath();
        }
      } while (this.again && !this.stopped);
    } finally {
      this.reading = false;
      if (this.stopped) this.closeFile();
    }
  }

  private async readToEnd(fh: FileHandle): Promise<void> {
    const size = (await fh.stat()).size;
    if (size < this.offset) this.offset = 0;
    if (size === this.offset) return;
    const buf = Buffer.alloc(size - this.offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
    this.offset += bytesRead;
    const { lines, rest } = splitLines(Buffer.concat([this.rest, buf.subarray(0, bytesRead)]));
    this.rest = Buffer.from(rest);
    for (const l of lines) {
      const e = parseLogLine(l);
      if (e && !this.stopped) this.onEntry(e);
    }
  }

  private closeFile(): void {
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => {});
  }
}

/** Docker's 8-byte multiplexed frame header + payload (stream 1 = stdout, 2 = stderr). */
export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}
