import { join } from 'node:path';
import { directorySize } from '../volumes/directory-size.js';

/** `SizeRw` and `SizeRootFs` of `docker ps -s` and `docker system df`. */
export interface ContainerSize {
  /** Bytes the container wrote: its overlay upper folder; absent when nothing was (moby's omitempty). */
  SizeRw?: number;
  /** The image's layers plus SizeRw (moby: the rw layer's parent chain size plus SizeRw). */
  SizeRootFs: number;
}

/** Measures a container's folder (`<dir>/upper` is the overlay upper layer) over its image's size. */
export function containerSize(containerDir: string, imageSize: number): ContainerSize {
  const rw = directorySize(join(containerDir, 'upper'));
  return rw ? { SizeRw: rw, SizeRootFs: imageSize + rw } : { SizeRootFs: imageSize };
}
