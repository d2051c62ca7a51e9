import { InvalidParameter, NotFound } from '../errors.js';
import type { NetworkDriver } from './driver.js';
import { BridgeDriver } from './drivers/bridge/bridge-driver.js';
import { HostDriver } from './drivers/host/host-driver.js';
import { NullDriver } from './drivers/null/null-driver.js';
import type { LinkOps } from './link-ops.js';
import type { AddressNamer } from './firewall/nftables/nft-policy-readback.js';
import { OvnDriver } from './drivers/ovn/ovn-driver.js';
import { OvnStack, stackOptionsFor } from './drivers/ovn/stack/ovn-stack.js';
import { WireguardDriver } from './drivers/wireguard/wireguard-driver.js';
import { createHash } from 'node:crypto';

/** The driver `""` means (docker-compose sends it). */
export const DEFAULT_DRIVER = 'bridge';

/** What built-in drivers may need from the daemon. */
export interface DriverDeps {
  linkOps: LinkOps;
  /** Kernel operations acting in another namespace (a driver's switch namespace). */
  linkOpsIn(ns: string): LinkOps;
  /** The daemon's state and runtime folders. */
  root: string;
  execRoot: string;
  /**
   * `--log-policy-drops`, for drivers that enforce policies in namespaces of their own (the
   * daemon's firewall logs its own): present when on, naming addresses with `namer`.
   */
  policyDrops?: { namer?: AddressNamer };
}

/** Built-in drivers, one row each. Later drivers (ovn, wireguard, …) are one more row. */
const BUILTINS: ReadonlyArray<readonly [string, (deps: DriverDeps) => NetworkDriver]> = [
  ['bridge', (deps) => new BridgeDriver(deps.linkOps)],
  ['host', () => new HostDriver()],
  ['null', () => new NullDriver()],
  [
    'ovn',
    (deps) =>
      new OvnDriver({
        linkOps: deps.linkOps,
        linkOpsIn: deps.linkOpsIn,
        stack: new OvnStack(stackOptionsFor(deps.root, deps.execRoot)),
      }),
  ],
  [
    'wireguard',
    (deps) =>
      new WireguardDriver({
        linkOps: deps.linkOps,
        linkOpsIn: deps.linkOpsIn,
        // The daemon's tag (Daemon.tag): machine-global names carry it.
        tag: createHash('sha256').update(deps.root).digest('hex').slice(0, 6),
        execRoot: deps.execRoot,
        ...(deps.policyDrops ? { policyDrops: deps.policyDrops } : {}),
      }),
  ],
];

/** Drivers by API string. Unknown names are errors, never a silent fallback. */
export class DriverRegistry {
  private readonly drivers = new Map<string, NetworkDriver>();

  /** Adds a driver; a second driver of the same name is refused. */
  register(driver: NetworkDriver): void {
    if (this.drivers.has(driver.name)) throw new InvalidParameter(`network driver "${driver.name}" is already registered`);
    this.drivers.set(driver.name, driver);
  }

  /** The driver for `name` (`""` → bridge). NotFound with Docker's text for an unknown one. */
  get(name: string): NetworkDriver {
    const d = this.drivers.get(name || DEFAULT_DRIVER);
    if (!d) throw new NotFound(`plugin "${name}" not found`);
    return d;
  }

  has(name: string): boolean {
    return this.drivers.has(name || DEFAULT_DRIVER);
  }

  all(): NetworkDriver[] {
    return [...this.drivers.values()];
  }

  /** A registry holding the built-in drivers. */
  static withBuiltins(deps: DriverDeps): DriverRegistry {
    const r = new DriverRegistry();
    for (const [, make] of BUILTINS) r.register(make(deps));
    return r;
  }
}
