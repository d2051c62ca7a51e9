import { randomBytes } from 'node:crypto';
import type { ContainerRecord } from '../containers/container-record.js';
import { parseCreateRequest } from '../containers/create-request.js';
import { hostResolvConf, renderResolvConf } from '../containers/etc-files.js';
import { NotFound } from '../errors.js';
import { logger } from '../log.js';
import type { NetworkAttacher } from '../network/network-attacher.js';
import type { NetnsManager } from '../network/netns.js';

const log = logger('arca:build:net');

/** The network a build's RUN steps use, ready for buildah. */
export interface BuildSandbox {
  /** buildah's `--network` value: `ns:/run/netns/...`, `host` or `none`. */
  network: string;
  /** More buildah flags that go with it: `--dns*`, `--add-host`. */
  args: string[];
  /** Leaves the network and deletes the namespace; idempotent, never throws. */
  close(): Promise<void>;
}

/** What the build network needs of the container layer: `container:<name>` modes. */
export interface SandboxDirectory {
  find(ref: string): ContainerRecord | undefined;
  sandboxKey(c: ContainerRecord): string;
}

/**
 * A namespace that is no container's, shaped as the network layer expects a container to be
 * (running, its namespace recorded): the attacher then treats it exactly as a container with that
 * network mode (addresses, routes, NAT, firewall rules, the embedded DNS server), and a daemon
 * restart drops its endpoint as it drops any unknown container's.
 */
function sandboxRecord(id: string, mode: string, netns: string, extraHosts: string[]): ContainerRecord {
  const { config, hostConfig } = parseCreateRequest({ Image: 'build', HostConfig: { NetworkMode: mode, ExtraHosts: extraHosts } });
  const zero = '0001-01-01T00:00:00Z';
  return {
    Id: id,
    Name: '',
    Created: new Date().toISOString(),
    ImageId: '',
    Path: '',
    Args: [],
    Config: { ...config, Hostname: '' },
    HostConfig: hostConfig,
    NetworkingConfig: { EndpointsConfig: {} },
    State: {
      Status: 'running',
      Pid: 0,
      ExitCode: 0,
      Error: '',
      StartedAt: zero,
      FinishedAt: zero,
      OOMKilled: false,
      ConmonPid: 0,
      Netns: netns,
      ManuallyStopped: false,
      RestartCount: 0,
    },
    Mounts: [],
    Seq: 0,
  };
}

/** resolv.conf text → buildah's `--dns`, `--dns-search`, `--dns-option` flags. */
function dnsFlags(text: string): string[] {
  const args: string[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    const [key, ...vals] = line.split(/\s+/);
    if (!vals.length) continue;
    if (key === 'nameserver') args.push(`--dns=${vals[0]}`);
    else if (key === 'search' || key === 'domain') for (const v of vals) args.push(`--dns-search=${v}`);
    else if (key === 'options') for (const v of vals) args.push(`--dns-option=${v}`);
  }
  return args;
}

/**
 * Gives builds the network Docker's classic builder gives them: by default a fresh namespace on
 * the default bridge; `networkmode=NAME` a user-defined network (so its rules and DNS apply),
 * `host`, `none`, or `container:<name>`.
 */
export class BuildNetwork {
  constructor(
    private readonly attacher: NetworkAttacher,
    private readonly netns: NetnsManager,
    private readonly containers: SandboxDirectory,
    private readonly tag: string,
  ) {}

  async open(mode: string, extraHosts: string[]): Promise<BuildSandbox> {
    const m = mode === '' || mode === 'default' ? 'bridge' : mode;
    const hostsArgs = (c?: ContainerRecord): string[] => {
      const list = c && this.attacher.extraHosts ? this.attacher.extraHosts(c) : extraHosts;
      return list.map((h) => `--add-host=${h}`);
    };
    if (m === 'host') return { network: 'host', args: hostsArgs(), close: async () => {} };
    if (m === 'none') return { network: 'none', args: hostsArgs(), close: async () => {} };
    if (m.startsWith('container:')) {
      const name = m.slice('container:'.length);
      const other = this.containers.find(name);
      const path = other ? this.containers.sandboxKey(other) : '';
      if (!other || other.State.Status !== 'running' || !path) throw new NotFound(`No such container: ${name}`);
      return { network: `ns:${path}`, args: hostsArgs(), close: async () => {} };
    }

    const id = randomBytes(32).toString('hex');
    // The daemon's own prefix: a namespace leaked by a crash is swept at the next start.
    const name = `arca-${this.tag}-b${id.slice(0, 10)}`;
    const c = sandboxRecord(id, m, name, extraHosts);
    this.attacher.validate(c);
    const path = await this.netns.create(name);
    let attached = false;
    const close = async (): Promise<void> => {
      if (attached) {
        attached = false;
        await this.attacher.detach(c, { closing: true }).catch((e: unknown) => log.warn('build sandbox detach failed', { error: String(e) }));
      }
      await this.netns.delete(name).catch((e: unknown) => log.warn('build netns not deleted', { name, error: String(e) }));
    };
    try {
      attached = true;
      await this.attacher.attach(c, path);
      const hostResolv = hostResolvConf();
      const resolv =
        this.attacher.resolvConf?.(c, hostResolv) ?? renderResolvConf(hostResolv, { dns: [], search: [], options: [], keepLoopback: false });
      return { network: `ns:${path}`, args: [...dnsFlags(resolv), ...hostsArgs(c)], close };
    } catch (e) {
      await close();
      throw e;
    }
  }
}
