import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';

export function registerExec(r: Router, d: Daemon): void {
  void r;
  void d;
}
