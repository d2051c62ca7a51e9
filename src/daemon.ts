import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { StateStore } from './state/store.js';
import { ImageStore } from './images/image-store.js';
import { VolumeManager } from './volumes/volume-manager.js';
import { ContainerManager } from './containers/container-manager.js';
import { ExecManager } from './containers/exec-manager.js';
import { logger } from './log.js';
import { NetworkManager } from './network/network-manager.js';
import { getNetMeta, migrateNetworkTables, setNetMeta } from './network/network-schema.js';
import { DefaultIpam } from './network/ipam/default/default-ipam.js';
import { DriverRegistry } from './network/driver-registry.js';
import { IpLinkOps } from './network/ip-link-ops.js';
import { NetlinkLinkOps } from './network/netlink-link-ops.js';
import type { LinkOps } from './network/link-ops.js';
import { loadNative } from './sys/native.js';
import { NftFirewall } from './network/firewall/nftables/nft-firewall.js';
import { worldNamer } from './network/firewall/nftables/nft-policy-readback.js';
import type { Firewall } from './network/firewall/firewall.js';
import { EmbeddedDns } from './network/embedded-dns.js';
import { PortAllocator } from './network/ports/port-allocator.js';
import { EventBus } from './events/event-bus.js';
import { ImageBuilder } from './build/image-builder.js';
import { BuildahBuilder } from './build/buildah-builder.js';
import { BuildNetwork } from './build/build-network.js';
import { seccompPolicy } from './runtime/seccomp/seccomp-policy.js';
import { PolicyManager } from './network/policies/policy-manager.js';
import { PolicyEnforcement } from './network/policies/policy-enforcement.js';

const log = logger('arca:daemon');

export interface DaemonConfig {
  /** State folder: SQLite, image layers, container folders, volumes. */
  root: string;
  /** Runtime folder on tmpfs: runc state, conmon sockets, exit files, pid files. */
  execRoot: string;
  /** Unix socket path of the Engine API. */
  socketPath: string;
  /** OCI runtime: `runc` (default) or `crun`. */
  runtime: string;
  /** Registries spoken to over plain HTTP (besides localhost). */
  insecureRegistries: string[];
  /** `--log-policy-drops`: log flows network policies drop (rate-limited, both ends named). */
  logPolicyDrops?: boolean;
}

/** Everything the API layer reaches: the managers, wired once. */
export class Daemon {
  readonly store: StateStore;
  readonly images: ImageStore;
  readonly volumes: VolumeManager;
  readonly containers: ContainerManager;
  readonly execs: ExecManager;
  readonly networks: NetworkManager;
  readonly builder: ImageBuilder;
  /** Network policies: the stored documents and where they are enforced. */
  readonly policies: PolicyEnforcement;
  /** A short tag unique to this daemon's root, used in machine-global names (netns, cgroups). */
  readonly tag: string;
  readonly startedAt = new Date();
  /** What `docker events` streams; every manager emits into it. */
  readonly events = new EventBus();

  constructor(readonly config: DaemonConfig) {
    mkdirSync(config.root, { recursive: true, mode: 0o711 });
    mkdirSync(config.execRoot, { recursive: true, mode: 0o711 });
    this.tag = createHash('sha256').update(config.root).digest('hex').slice(0, 6);
    this.store = new StateStore(config.root);
    this.images = new ImageStore(this.store, join(config.root, 'images'), config);
    this.volumes = new VolumeManager(this.store, join(config.root, 'volumes'));
    this.containers = new ContainerManager(this);
    this.execs = new ExecManager(this);
    migrateNetworkTables(this.store.db);
    const nat = loadNative();
    const linkOps: LinkOps = nat.helpers ? new NetlinkLinkOps(nat.helpers) : new IpLinkOps();
    if (nat.helpers) log.info('kernel operations over netlink and libnftables (native addon)', { nft: nat.helpers.nftAvailable() });
    else log.warn('native addon not loaded: kernel operations exec ip and nft', { reason: nat.reason });
    const drivers = DriverRegistry.withBuiltins({
      linkOps,
      linkOpsIn: (ns) => (nat.helpers ? new NetlinkLinkOps(nat.helpers, ns) : new IpLinkOps(ns)),
      root: config.root,
      execRoot: config.execRoot,
      ...(config.logPolicyDrops ? { policyDrops: { namer: worldNamer(() => this.networks.policyWorld()) } } : {}),
    });
    // Tables `inet arca_<tag>` and `inet arca_<tag>_nat`: two daemons on one machine never share rules.
    const nft = new NftFirewall({ tablePrefix: `arca_${this.tag}`, logPolicyDrops: config.logPolicyDrops ?? false });
    const firewall: Firewall = nft;
    this.policies = new PolicyEnforcement(new PolicyManager(this.store.db), drivers, firewall);
    this.networks = new NetworkManager(
      this.store.db,
      new DefaultIpam(this.store.db),
      drivers,
      this.containers,
      firewall,
      new EmbeddedDns(Number(getNetMeta(this.store.db, 'dns_port') ?? 0), (p) => setNetMeta(this.store.db, 'dns_port', String(p))),
      join(config.root, 'network'),
      new PortAllocator(),
    );
    this.containers.attacher = this.networks;
    this.networks.policies = this.policies;
    this.policies.attach(this.networks);
    if (config.logPolicyDrops) nft.setAddressNamer(worldNamer(() => this.networks.policyWorld()));
    this.networks.events = this.events;
    this.images.events = this.events;
    this.volumes.events = this.events;
    this.builder = new ImageBuilder(
      this.images,
      new BuildahBuilder(this.images, config.root, config.execRoot, config.runtime),
      new BuildNetwork(this.networks, this.containers.netns, this.containers, this.tag),
    );
    this.builder.events = this.events;
    this.images.setUsageCheck((imageId) => this.containers.containersUsingImage(imageId));
    this.volumes.setUsageCheck((name) => this.containers.containersUsingVolume(name));
  }

  /** Reconciles the kernel and the disk with the database (live-restore), then serves. */
  async start(): Promise<void> {
    void seccompPolicy.probeKernel();
    // Networks (bridges) first: containers restarted by their policy during recovery join them.
    await this.networks.start();
    await this.images.recover();
    await this.containers.recover();
    await this.networks.reconcile();
    log.info('daemon ready', { root: this.config.root, tag: this.tag });
  }

  async stop(): Promise<void> {
    await this.containers.shutdown();
    await this.networks.stop();
    this.store.close();
  }
}
