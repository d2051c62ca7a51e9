import { native } from './native.js';
import { run } from './runner.js';

/**
 * Writes a /proc/sys file inside the network namespace at `nsPath` (null: the daemon's own): by
 * the native addon's setns thread when it is loaded, else by `sysctl` under nsenter.
 */
export async function writeSysctl(nsPath: string | null, path: string, value: string): Promise<void> {
  const n = native();
  if (n) return n.writeFileIn(nsPath, path, value);
  const key = path.replace('/proc/sys/', '').replace(/\//g, '.');
  await run(nsPath ? ['nsenter', `--net=${nsPath}`, '--', 'sysctl', '-qw', `${key}=${value}`] : ['sysctl', '-qw', `${key}=${value}`]);
}
