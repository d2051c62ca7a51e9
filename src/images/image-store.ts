import type { StateStore } from '../state/store.js';
import type { DaemonConfig } from '../daemon.js';
import { NotFound, NotImplemented } from '../errors.js';

/** The OCI/Docker image config's `config` part, as Docker's inspect shows it. */
export interface ImageRunConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Hostname?: string;
}

/** One image as stored. */
export interface ImageRecord {
  /** `sha256:<hex>` of the config JSON. */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  created: string;
  size: number;
  /** The image config JSON (architecture, os, config, rootfs, history, ...). */
  config: { config?: ImageRunConfig; architecture?: string; os?: string; [k: string]: unknown };
  /** Layer chain ids, bottom first. */
  layers: string[];
}

/**
 * Images and their layers. Each layer is unpacked once into its own read-only folder
 * (whiteouts converted to overlayfs form) and shared by every image and container using it.
 */
export class ImageStore {
  private usageCheck: (imageId: string) => string[] = () => [];

  constructor(
    protected readonly store: StateStore,
    protected readonly dir: string,
    protected readonly config: DaemonConfig,
  ) {}

  /** Tells which containers use an image (for 409 on rmi without force). */
  setUsageCheck(fn: (imageId: string) => string[]): void {
    this.usageCheck = fn;
  }

  /** Removes half-unpacked layers and temp files left by a killed daemon. */
  async recover(): Promise<void> {}

  /**
   * Resolves a reference (`busybox`, `busybox:1`, `localhost:5000/x@sha256:...`), a full or
   * short id, or `sha256:<id>`. Throws NotFound `No such image: <ref>`.
   */
  get(ref: string): ImageRecord {
    void this.usageCheck;
    throw new NotFound(`No such image: ${ref}`);
  }

  /** How many images are stored (for `/info`). */
  count(): number {
    return 0;
  }

  /** The overlayfs lower dirs for an image, top layer first (overlay's `lowerdir` order). */
  lowerDirs(image: ImageRecord): string[] {
    void image;
    throw new NotImplemented('images are not implemented');
  }
}
