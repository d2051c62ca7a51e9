import type { NetworkDriver } from '../driver.js';

/**
 * A driver with nothing to build in the kernel (`host`, `null`): every operation succeeds and
 * does nothing. The network modes differ in what the container manager does, not here.
 */
export abstract class KernelFreeDriver implements NetworkDriver {
  abstract readonly name: string;
  readonly usesIpam = false;
  validateNetwork(): void {}
  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}
  async join(): Promise<void> {}
  async leave(): Promise<void> {}
}
