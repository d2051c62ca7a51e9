import { NotFound } from '../errors.js';
import type { ContainerRecord } from '../containers/container-record.js';
import type { NetworkAttacher } from './network-attacher.js';

const KNOWN = new Set(['bridge', 'default', 'host', 'none']);

function modeName(c: ContainerRecord): string {
  const m = c.HostConfig.NetworkMode;
  return m === 'default' ? 'bridge' : m;
}

/**
 * The attacher before the NetworkManager exists: containers get their own namespace with
 * loopback (`bridge` for now behaves like `none`), `host` shares the host's, `container:<id>`
 * joins another's. Networks proper arrive with the bridge driver.
 */
export class BasicAttacher implements NetworkAttacher {
  validate(c: ContainerRecord): void {
    const m = c.HostConfig.NetworkMode;
    if (m.startsWith('container:')) return;
    if (!KNOWN.has(m)) throw new NotFound(`network ${m} not found`);
  }

  async attach(): Promise<void> {}

  async detach(): Promise<void> {}

  settings(c: ContainerRecord, sandboxKey: string): Record<string, unknown> {
    const mode = modeName(c);
    const networks: Record<string, unknown> = {};
    if (!mode.startsWith('container:')) {
      networks[mode] = {
        IPAMConfig: null,
        Links: null,
        Aliases: null,
        MacAddress: '',
        DriverOpts: null,
        GwPriority: 0,
        NetworkID: mode.padEnd(64, '0'),
        EndpointID: '',
        Gateway: '',
        IPAddress: '',
        IPPrefixLen: 0,
        IPv6Gateway: '',
        GlobalIPv6Address: '',
        GlobalIPv6PrefixLen: 0,
        DNSNames: null,
      };
    }
    return {
      Bridge: '',
      SandboxID: c.State.Status === 'running' ? c.Id : '',
      SandboxKey: c.State.Status === 'running' ? sandboxKey : '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: {},
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: '',
      Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: '',
      IPPrefixLen: 0,
      IPv6Gateway: '',
      MacAddress: '',
      Networks: networks,
    };
  }

  hostsEntries(): string[] {
    return [];
  }
}
