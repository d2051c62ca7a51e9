import { KernelFreeDriver } from '../kernel-free-driver.js';

/**
 * `host`: the container shares the daemon's network namespace, so there is nothing to build.
 * The container manager gives such containers no namespace of their own.
 */
export class HostDriver extends KernelFreeDriver {
  readonly name = 'host';
}
