import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';

/** arca's own extension: a deny network's allowlist, learnt addresses and drop counters. */
export const EGRESS_PATH = '/arca/v1/networks/{name}/egress';

export function registerEgress(r: Router, d: Daemon): void {
  r.get(EGRESS_PATH, async (c) => {
    c.send(200, await d.networks.egress(c.params[0]!));
  });
}
