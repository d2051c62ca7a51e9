import type { Daemon } from '../daemon.js';

export class ExecManager {
  constructor(private readonly d: Daemon) {
    void this.d;
  }
}
