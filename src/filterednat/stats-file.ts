import { renameSync, writeFileSync } from 'node:fs';

/**
 * Keeps a JSON snapshot in a file, replaced atomically (write a sibling, rename over): a reader
 * polling the file never sees half a document.
 */
export class StatsFile {
  private timer: NodeJS.Timeout | undefined;
  private readonly tmp: string;
  private failing = false;

  constructor(
    readonly path: string,
    private readonly snapshot: () => unknown,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    this.tmp = `${path}.tmp-${process.pid}`;
  }

  /** Writes once now (throwing if that fails: a bad path is the caller's to report), then every `intervalMs`. */
  start(intervalMs: number): void {
    this.write();
    this.timer = setInterval(() => this.tryWrite(), intervalMs);
    this.timer.unref();
  }

  write(): void {
    writeFileSync(this.tmp, JSON.stringify(this.snapshot()) + '\n');
    renameSync(this.tmp, this.path);
  }

  /** A write that reports its first failure of a run of them and keeps going. */
  tryWrite(): void {
    try {
      this.write();
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.onError(err as Error);
      this.failing = true;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tryWrite();
  }
}
