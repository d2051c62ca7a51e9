import type { ServerResponse } from 'node:http';

/** One message of Docker's JSON progress stream (`jsonmessage.JSONMessage`). */
export interface ProgressMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  stream?: string;
  aux?: unknown;
  errorDetail?: { message: string; code?: number };
  error?: string;
}

function humanSize(n: number): string {
  // docker/go-units HumanSize: decimal units, 4 significant digits.
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** The text bar Docker puts in `progress`: `[=====>     ]  1.2MB/3.4MB`. */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return `${humanSize(current).padStart(8)}`;
  const width = 50;
  const pct = Math.min(1, current / total);
  const filled = Math.floor(pct * width);
  const bar = '='.repeat(filled) + (filled < width ? '>' + ' '.repeat(width - filled - 1) : '');
  return `[${bar}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/**
 * Writes a JSON progress stream (one JSON object per line, `\r\n` like Docker's
 * streamformatter). Headers go out with the first message, so an error before it can still be
 * answered with a proper status code.
 */
export class ProgressStream {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  /** Has anything been sent (so errors must go into the stream)? */
  get flushed(): boolean {
    return this.started;
  }

  write(msg: ProgressMessage): void {
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'Content-Type': 'application/json' });
    }
    this.res.write(JSON.stringify(msg) + '\r\n');
  }

  status(status: string, id?: string): void {
    this.write(id === undefined ? { status } : { status, progressDetail: {}, id });
  }

  progress(status: string, id: string, current: number, total: number): void {
    this.write({ status, progressDetail: { current, total }, progress: progressBar(current, total), id });
  }

  stream(text: string): void {
    this.write({ stream: text });
  }

  error(message: string): void {
    this.write({ errorDetail: { message }, error: message });
  }

  end(): void {
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'Content-Type': 'application/json' });
    }
    this.res.end();
  }
}
