import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { InvalidParameter } from '../errors.js';
import { spoolBody } from './body-spool.js';
import { applyChanges } from './change-parser.js';
import type { ImageStore } from './image-store.js';
import { hostPlatform } from './platform.js';
import type { ImageReference } from './reference.js';

export interface ImportOptions {
  /** Where to tag the new image, if anywhere. */
  ref?: ImageReference;
  /** History comment; Docker's default is `Imported from <src>`. */
  message: string;
  /** `--change` Dockerfile instructions. */
  changes: string[];
  platform?: { os: string; architecture: string; variant?: string };
}

/** The Docker version string written into configs arca creates (what `docker_version` says). */
export const CREATED_BY_DOCKER_VERSION = '28.5.2';

/**
 * `docker import`: one rootfs tar (maybe compressed) becomes a one-layer image whose config comes
 * from the `--change` instructions. Returns the new image id.
 */
export async function importImage(images: ImageStore, body: Readable, opts: ImportOptions): Promise<string> {
  // Validate before reading the body, as Docker does.
  const runConfig = applyChanges({}, opts.changes);
  const platform = opts.platform ?? hostPlatform();
  const scratch = await images.layers.tempDir();
  let chainId: string | undefined;
  try {
    const blob = await spoolBody(body, scratch, 'rootfs');
    const { diffId, tarPath } = await images.layers.inflate(blob, scratch);
    await rm(blob, { force: true });
    const layer = await images.layers.register(tarPath, diffId, null).catch((e: unknown) => {
      throw e instanceof InvalidParameter ? e : new InvalidParameter(`invalid tar: ${(e as Error).message}`, { cause: e });
    });
    chainId = layer.chainId;
    const created = new Date().toISOString();
    const config: Record<string, unknown> = {
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      comment: opts.message,
      config: runConfig,
      created,
      docker_version: CREATED_BY_DOCKER_VERSION,
      history: [{ created, comment: opts.message }],
      os: platform.os,
      rootfs: { type: 'layers', diff_ids: [diffId] },
    };
    const { id } = images.commit({ configJson: JSON.stringify(config), layers: [layer] }, opts.ref ? [opts.ref] : [], {
      tagTime: true,
    });
    images.event('import', id);
    return id;
  } finally {
    if (chainId) images.layers.unpin(chainId);
    await rm(scratch, { recursive: true, force: true });
  }
}
