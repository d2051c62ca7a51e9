import type { ContainerRecord } from '../containers/container-record.js';

/** What the network layer tells a container about one of its networks (inspect's EndpointSettings). */
export interface EndpointInfo {
  [k: string]: unknown;
}

/**
 * How containers meet the network layer. The container manager creates the network
 * namespace, then calls `attach` before the runtime starts the process and `detach` after it
 * exited; live connect/disconnect go through the network manager directly. The NetworkManager
 * (`network-manager.ts`) implements it.
 */
export interface NetworkAttacher {
  /** Checks the container's network settings at create time (unknown network → 404). */
  validate(c: ContainerRecord): void;
  /** Joins the container's networks inside `netnsPath` (undefined for `host`). */
  attach(c: ContainerRecord, netnsPath: string | undefined): Promise<void>;
  /**
   * Leaves them; best effort, idempotent. `closing`: the caller deletes the namespace right after,
   * which takes what lives inside it along.
   */
  detach(c: ContainerRecord, opts?: { closing?: boolean }): Promise<void>;
  /** `NetworkSettings` for inspect. */
  settings(c: ContainerRecord, sandboxKey: string): Record<string, unknown>;
  /** Lines for /etc/hosts naming the container itself, e.g. `172.17.0.2\tabc123`. */
  hostsEntries(c: ContainerRecord): string[];
  /**
   * The container's resolv.conf when its networks decide it (user-defined networks: the embedded
   * server at 127.0.0.11, `options ndots:0`); undefined keeps the file derived from the host's.
   */
  resolvConf?(c: ContainerRecord, hostResolvConf: string): string | undefined;
  /** Docker's legacy link variables (`ALIAS_PORT`, `ALIAS_NAME`, ...) for a starting container. */
  linkEnv?(c: ContainerRecord): string[];
  /** The container's `HostConfig.Links` changed: its /etc/hosts and link names follow. */
  linksChanged?(c: ContainerRecord): Promise<void>;
  /**
   * The container was renamed from `oldName`: its endpoints answer to the new name in DNS and in
   * `names` selectors of policies; resolves once that is in force.
   */
  renamed?(c: ContainerRecord, oldName: string): Promise<void>;
  /** `--add-host` entries with `host-gateway` replaced by the host's address on the default bridge. */
  extraHosts?(c: ContainerRecord): string[];
}
