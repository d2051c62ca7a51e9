import type { NetworkDriver } from '../../driver.js';

/**
 * `host`: the container shares the daemon's network namespace, so there is nothing to build.
 * The container manager gives such containers no namespace of their own.
 */
export class HostDriver implements NetworkDriver {
  readonly name = 'host';
  readonly usesIpam = false;
  validateNetwork(): void {}
  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}
  async join(): Promise<void> {}
  async leave(): Promise<void> {}
}
