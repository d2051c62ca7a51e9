import { errorMessage, SystemError } from '../../../errors.js';
import { logger } from '../../../log.js';
import { NftError, nftLoad } from '../../../sys/nft.js';
import type { Firewall, FirewallState } from '../firewall.js';
import { requiredSysctls, writeSysctls } from './host-sysctls.js';
import { renderRuleset, renderTeardown, tableNames } from './nft-ruleset.js';

const log = logger('arca:net:firewall');

export interface NftFirewallOptions {
  /**
   * Prefix unique to this daemon; it owns the tables `inet <prefix>` and `inet <prefix>_nat`
   * and nothing else. Letters, digits and `_`.
   */
  tablePrefix: string;
  /** Path of the network namespace to program (`/run/netns/x`); default: the daemon's own. */
  netns?: string;
  /** Write {@link requiredSysctls} after each apply (default true). */
  sysctls?: boolean;
  /** `arca daemon --log-policy-drops`: record policy drops for the daemon log (see nft-policy.ts). */
  logPolicyDrops?: boolean;
}

/**
 * The `nftables` firewall: renders the whole state into one script and loads it with a single
 * transaction (in-process through libnftables, or `nft -f -`), which replaces the daemon's tables in one kernel transaction (all or nothing).
 * It never reads the ruleset back: the daemon's state is the truth.
 */
export class NftFirewall implements Firewall {
  readonly name = 'nftables';
  readonly tables: { filter: string; nat: string };

  constructor(private readonly opts: NftFirewallOptions) {
    this.tables = tableNames(opts.tablePrefix);
  }

  /** The nft script {@link apply} would load for `state`. Pure; throws InvalidParameter on bad state. */
  render(state: FirewallState): string {
    return renderRuleset(state, this.opts.tablePrefix, { logDrops: this.opts.logPolicyDrops ?? false });
  }

  async apply(state: FirewallState): Promise<void> {
    const script = this.render(state);
    await this.load(script, 'apply');
    if (this.opts.sysctls ?? true) await writeSysctls(requiredSysctls(state), this.opts.netns);
  }

  async teardown(): Promise<void> {
    await this.load(renderTeardown(this.opts.tablePrefix), 'teardown');
  }

  private async load(script: string, what: string): Promise<void> {
    const started = Date.now();
    try {
      await nftLoad(script, this.opts.netns);
    } catch (err) {
      const stderr = err instanceof NftError ? err.stderr.trim() : errorMessage(err);
      const numbered = script
        .split('\n')
        .map((l, i) => `${String(i + 1).padStart(4)}  ${l}`)
        .join('\n');
      log.error(`nft ${what} failed: ${stderr}\n${numbered}`);
      throw new SystemError(`firewall ${what} failed: ${stderr}`, { cause: err });
    }
    log.debug(`nft ${what}`, { tables: this.tables, ms: Date.now() - started, bytes: script.length });
  }
}
