import type { Daemon } from '../daemon.js';

export class ContainerManager {
  constructor(private readonly d: Daemon) {}
  containersUsingImage(imageId: string): string[] {
    void imageId;
    void this.d;
    return [];
  }
  containersUsingVolume(name: string): string[] {
    void name;
    return [];
  }
  counts(): { total: number; running: number; paused: number; stopped: number } {
    return { total: 0, running: 0, paused: 0, stopped: 0 };
  }
  async recover(): Promise<void> {}
  shutdown(): void {}
}
