import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';

/** Image endpoints: load, import, pull, list, inspect, tag, rmi, prune, history. */
export function registerImages(r: Router, d: Daemon): void {
  r.get('/images/{*}/json', (c) => c.send(200, d.images.get(c.params[0]!)));
}
