import { MASKED_PATHS, READONLY_PATHS } from '../runtime/oci-spec.js';
import type { Daemon } from '../daemon.js';
import type { ContainerRecord } from './container-record.js';
import { linksView } from './legacy-links.js';
import { initLayerDir } from './init-layer.js';

/** `docker ps` STATUS column text: `Up 5 seconds`, `Exited (0) 2 minutes ago`, `Created`. */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  const d = Math.round(h / 24);
  if (d < 14) return `${d} days`;
  return `${Math.round(d / 7)} weeks`;
}

export function statusText(c: ContainerRecord): string {
  const st = c.State;
  switch (st.Status) {
    case 'running':
      return `Up ${humanDuration(Date.now() - Date.parse(st.StartedAt))}`;
    case 'paused':
      return `Up ${humanDuration(Date.now() - Date.parse(st.StartedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${st.ExitCode}) ${humanDuration(Date.now() - Date.parse(st.FinishedAt))} ago`;
    case 'exited':
      if (st.FinishedAt.startsWith('0001')) return 'Created';
      return `Exited (${st.ExitCode}) ${humanDuration(Date.now() - Date.parse(st.FinishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}

function mountsView(c: ContainerRecord): Record<string, unknown>[] {
  return c.Mounts.map((m) =>
    m.Type === 'volume'
      ? { Type: 'volume', Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: 'local', Mode: m.Mode, RW: m.RW, Propagation: '' }
      : m.Type === 'bind'
        ? { Type: 'bind', Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation }
        : { Type: 'tmpfs', Source: '', Destination: m.Destination, Mode: '', RW: m.RW, Propagation: '' },
  );
}

function imageName(d: Daemon, c: ContainerRecord): string {
  return c.Config.Image;
}

/** `GET /containers/{id}/json`. */
export function inspectView(d: Daemon, c: ContainerRecord, execIds: string[]): Record<string, unknown> {
  const dir = d.containers.dir(c.Id);
  const st = c.State;
  const running = st.Status === 'running' || st.Status === 'paused';
  return {
    Id: c.Id,
    Created: c.Created,
    Path: c.Path,
    Args: c.Args,
    State: {
      Status: st.Status,
      // Docker counts a container waiting for its policy restart as running (moby State.SetRestarting).
      Running: running || st.Status === 'restarting',
      Paused: st.Status === 'paused',
      Restarting: st.Status === 'restarting',
      OOMKilled: st.OOMKilled,
      Dead: st.Status === 'dead',
      Pid: running ? st.Pid : 0,
      ExitCode: st.ExitCode,
      Error: st.Error,
      StartedAt: st.StartedAt,
      FinishedAt: st.FinishedAt,
    },
    Image: c.ImageId,
    ResolvConfPath: `${dir}/resolv.conf`,
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    LogPath: d.containers.logPath(c.Id),
    Name: `/${c.Name}`,
    RestartCount: st.RestartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: hostConfigView(d, c),
    GraphDriver: {
      Name: 'overlay2',
      Data: {
        LowerDir: safeLower(d, c),
        MergedDir: `${dir}/rootfs`,
        UpperDir: `${dir}/upper`,
        WorkDir: `${dir}/work`,
      },
    },
    Mounts: mountsView(c),
    Config: c.Config,
    NetworkSettings: d.containers.attacher.settings(c, d.containers.sandboxKey(c)),
  };
}

function safeLower(d: Daemon, c: ContainerRecord): string {
  try {
    return [initLayerDir(d.containers.dir(c.Id)), ...d.images.lowerDirs(d.images.get(c.ImageId))].join(':');
  } catch {
    return '';
  }
}

/** One entry of `GET /containers/json`. */
export function listView(d: Daemon, c: ContainerRecord): Record<string, unknown> {
  const settings = d.containers.attacher.settings(c, d.containers.sandboxKey(c));
  const ports = (settings['PortsList'] as unknown[] | undefined) ?? [];
  return {
    Id: c.Id,
    Names: [`/${c.Name}`],
    Image: imageName(d, c),
    ImageID: c.ImageId,
    Command: commandText(c),
    Created: Math.floor(Date.parse(c.Created) / 1000),
    Ports: ports,
    Labels: c.Config.Labels ?? {},
    State: c.State.Status,
    Status: statusText(c),
    HostConfig: { NetworkMode: c.HostConfig.NetworkMode },
    NetworkSettings: { Networks: settings['Networks'] ?? {} },
    Mounts: mountsView(c),
  };
}

/** `Command` of a list entry, as moby writes it: arguments holding a space in single quotes, the path as is. */
export function commandText(c: Pick<ContainerRecord, 'Path' | 'Args'>): string {
  if (!c.Args.length) return c.Path;
  return `${c.Path} ${c.Args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`;
}

/**
 * `HostConfig` of inspect: the record as the client sent it, with the defaults dockerd fills in at
 * create (checked against 20.10): no pids limit and the kernel's swappiness are null, the cgroup
 * namespace is the host's (arca makes no private one), the runtime is named, and the kernel paths
 * it masks or makes read-only are listed. `Init` is omitted when unset (omitempty).
 */
function hostConfigView(d: Daemon, c: ContainerRecord): Record<string, unknown> {
  const hc = c.HostConfig as ContainerRecord['HostConfig'] & Record<string, unknown>;
  const swappiness = hc['MemorySwappiness'];
  return {
    ...hc,
    Links: linksView(c, (r) => d.containers.find(r)),
    Mounts: hc.Mounts?.length ? hc.Mounts : undefined,
    PidsLimit: hc.PidsLimit && hc.PidsLimit > 0 ? hc.PidsLimit : null,
    MemorySwappiness: typeof swappiness === 'number' && swappiness >= 0 ? swappiness : null,
    CgroupnsMode: hc['CgroupnsMode'] || 'host',
    Runtime: hc['Runtime'] || d.config.runtime,
    MaskedPaths: hc['MaskedPaths'] ?? (hc.Privileged ? null : [...MASKED_PATHS]),
    ReadonlyPaths: hc['ReadonlyPaths'] ?? (hc.Privileged ? null : [...READONLY_PATHS]),
    Init: hc.Init ?? undefined,
  };
}
