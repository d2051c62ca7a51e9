import { renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

/**
 * Keeps a JSON snapshot in a file, replaced atomically (write a sibling, rename over): a reader
 * polling the file never sees half a document. The periodic writes go through libuv's thread
 * pool: done on the main thread they stalled the engine's loop for 0.6 ms (median) to 9 ms (a
 * busy disk) twice a second, and every frame arriving meanwhile waited for them.
 */
export class StatsFile {
  private timer: NodeJS.Timeout | undefined;
  private readonly tmp: string;
  private failing = false;
  /** A periodic write still under way: the next tick skips rather than queue behind it. */
  private writing: Promise<void> | undefined;

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
    this.timer = setInterval(() => void this.tryWrite(), intervalMs);
    this.timer.unref();
  }

  /** Writes synchronously now. */
  write(): void {
    writeFileSync(this.tmp, this.text());
    renameSync(this.tmp, this.path);
  }

  /** A write off the main thread that reports its first failure of a run of them and keeps going. */
  tryWrite(): Promise<void> {
    if (this.writing) return this.writing;
    const text = this.text();
    this.writing = writeFile(this.tmp, text)
      .then(() => rename(this.tmp, this.path))
      .then(
        () => {
          this.failing = false;
        },
        (err: Error) => {
          if (!this.failing) this.onError(err);
          this.failing = true;
        },
      )
      .finally(() => {
        this.writing = undefined;
      });
    return this.writing;
  }

  /** Stops the timer and writes the last snapshot synchronously (after one under way, if any, has landed: it must not rename over it). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.writing) await this.writing;
    try {
      this.write();
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.onError(err as Error);
      this.failing = true;
    }
  }

  private text(): string {
    return JSON.stringify(this.snapshot()) + '\n';
  }
}
