import type { StateStore } from '../state/store.js';
import { NotFound } from '../errors.js';

/** One named local volume, shaped as Docker's `GET /volumes/{name}` answers. */
export interface VolumeRecord {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
}

/** Named `local` volumes: a folder each under `<root>/volumes/<name>/_data`. */
export class VolumeManager {
  private usageCheck: (name: string) => string[] = () => [];

  constructor(
    protected readonly store: StateStore,
    protected readonly dir: string,
  ) {}

  setUsageCheck(fn: (name: string) => string[]): void {
    this.usageCheck = fn;
  }

  /** Returns the volume, creating it when absent (what `docker run -v name:/path` does). */
  ensure(name: string, labels: Record<string, string> = {}): VolumeRecord {
    void labels;
    void this.usageCheck;
    throw new NotFound(`get ${name}: no such volume`);
  }

  get(name: string): VolumeRecord {
    throw new NotFound(`get ${name}: no such volume`);
  }

  /** Anonymous volumes are removed with their container on `rm -v`. */
  remove(name: string, force = false): void {
    void force;
    throw new NotFound(`get ${name}: no such volume`);
  }
}
