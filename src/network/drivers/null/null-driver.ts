import { KernelFreeDriver } from '../kernel-free-driver.js';

/** `null` (network `none`): the container keeps its own namespace with loopback only. */
export class NullDriver extends KernelFreeDriver {
  readonly name = 'null';
}
