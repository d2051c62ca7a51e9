import type { NetworkDriver } from '../../driver.js';

/** `null` (network `none`): the container keeps its own namespace with loopback only. */
export class NullDriver implements NetworkDriver {
  readonly name = 'null';
  readonly usesIpam = false;
  validateNetwork(): void {}
  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}
  async join(): Promise<void> {}
  async leave(): Promise<void> {}
}
