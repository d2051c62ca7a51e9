import { existsSync, readdirSync } from 'node:fs';
import { run } from '../sys/runner.js';

export const NETNS_DIR = '/run/netns';

/**
 * Named network namespaces (`ip netns`), one per container that does not share the host's or
 * another container's. Names carry the daemon's tag so two daemons on one machine (tests) never
 * touch each other's.
 */
export class NetnsManager {
  constructor(private readonly tag: string) {}

  nameFor(containerId: string): string {
    return `arca-${this.tag}-${containerId.slice(0, 12)}`;
  }

  pathOf(name: string): string {
    return `${NETNS_DIR}/${name}`;
  }

  /** Creates the namespace with its loopback up. Returns its path. */
  async create(name: string): Promise<string> {
    if (!existsSync(this.pathOf(name))) await run(['ip', 'netns', 'add', name]);
    await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return this.pathOf(name);
  }

  /** Deletes it; already gone is success. */
  async delete(name: string): Promise<void> {
    if (!existsSync(this.pathOf(name))) return;
    await run(['ip', 'netns', 'delete', name], { allowFailure: true });
  }

  /** Every namespace this daemon owns, by name. */
  list(): string[] {
    let names: string[] = [];
    try {
      names = readdirSync(NETNS_DIR);
    } catch {
      return [];
    }
    return names.filter((n) => n.startsWith(`arca-${this.tag}-`));
  }
}
