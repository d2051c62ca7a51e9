import { SystemError } from '../errors.js';
import { native } from './native.js';
import { CommandError, run } from './runner.js';

/** An nft script the kernel (or nft's parser) refused; `stderr` is nft's own text. */
export class NftError extends SystemError {
  constructor(readonly stderr: string) {
    super(stderr.trim() || 'nft failed');
  }
}

/**
 * Loads an nft script (text) in the daemon's namespace or in the one at `nsPath`: in-process
 * through libnftables when the native addon loads (no exec, ~1 ms), else with `nft -f -`
 * (through nsenter for another namespace). The script is one transaction either way.
 */
export async function nftLoad(script: string, nsPath?: string): Promise<void> {
  const n = native();
  if (n && n.nftAvailable()) {
    const [rc, , err] = await n.nftRun(script, nsPath ?? null);
    if (rc !== 0) throw new NftError(err);
    return;
  }
  const argv = [...(nsPath ? ['nsenter', `--net=${nsPath}`] : []), 'nft', '-f', '-'];
  try {
    // Text on stdin: `nft -j -f -` cannot read a pipe from Node (it reopens /dev/stdin), text can.
    await run(argv, { input: script, timeoutMs: 30_000 });
  } catch (err) {
    if (err instanceof CommandError) throw new NftError(err.stderr);
    throw err;
  }
}

/**
 * Runs one read-only nft command (`list counters table inet x`) in the daemon's namespace or the
 * one at `nsPath` and returns its text output (libnftables in-process, else `nft`).
 */
export async function nftOutput(command: string, nsPath?: string): Promise<string> {
  const n = native();
  if (n && n.nftAvailable()) {
    const [rc, out, err] = await n.nftRun(command, nsPath ?? null);
    if (rc !== 0) throw new NftError(err);
    return out;
  }
  const argv = [...(nsPath ? ['nsenter', `--net=${nsPath}`] : []), 'nft', ...command.split(' ')];
  try {
    return (await run(argv, { timeoutMs: 30_000 })).stdout;
  } catch (err) {
    if (err instanceof CommandError) throw new NftError(err.stderr);
    throw err;
  }
}
