import os from 'node:os';
import { readFileSync } from 'node:fs';
import type { Router } from './router.js';
import { MAX_API_VERSION, MIN_API_VERSION, compareVersions } from './router.js';
import { gateDiskUsage } from './version-gates.js';
import { diskUsage, diskUsageKinds } from '../system/disk-usage.js';
import type { Daemon } from '../daemon.js';
import { ARCA_VERSION } from '../version.js';
import { seccompPolicy } from '../runtime/seccomp/seccomp-policy.js';
import { LOG_DRIVERS } from '../containers/log-config.js';

function kernelVersion(): string {
  return os.release();
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

export function registerSystem(r: Router, d: Daemon): void {
  const ping = (c: Parameters<Parameters<Router['get']>[1]>[0]): void => {
    c.res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
    c.res.setHeader('Pragma', 'no-cache');
    c.res.setHeader('Builder-Version', '1');
    c.res.setHeader('Swarm', 'inactive');
    if (c.req.method === 'HEAD') {
      c.res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 0 });
      c.res.end();
      return;
    }
    c.res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    c.res.end('OK');
  };
  r.get('/_ping', ping);
  r.head('/_ping', ping);

  r.get('/version', (c) =>
    c.send(200, {
      Platform: { Name: 'arca' },
      Components: [
        {
          Name: 'Engine',
          Version: ARCA_VERSION,
          Details: { ApiVersion: MAX_API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: goArch() },
        },
      ],
      Version: ARCA_VERSION,
      ApiVersion: MAX_API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'arca',
      GoVersion: `node${process.versions.node}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: kernelVersion(),
      BuildTime: d.startedAt.toISOString(),
    }),
  );

  r.get('/info', (c) => {
    const counts = d.containers.counts();
    c.send(200, {
      ID: d.tag,
      Containers: counts.total,
      ContainersRunning: counts.running,
      ContainersPaused: counts.paused,
      ContainersStopped: counts.stopped,
      Images: d.images.count(),
      Driver: 'overlay2',
      DriverStatus: [['Backing Filesystem', 'extfs']],
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: [...LOG_DRIVERS] },
      MemoryLimit: true,
      SwapLimit: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      // What `docker run` can ask of the cgroups here (dockerd's sysinfo, as 20.10 reports it).
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: true,
      KernelMemoryTCP: false,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      NEventsListener: d.events.listenerCount,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: '1',
      KernelVersion: kernelVersion(),
      OperatingSystem: osName(),
      OSVersion: '',
      OSType: 'linux',
      Architecture: os.machine(),
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128'],
        IndexConfigs: indexConfigs(d.images.insecureRegistries),
        Mirrors: [],
      },
      DockerRootDir: d.config.root,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: ARCA_VERSION,
      Runtimes: { runc: { path: 'runc' }, crun: { path: 'crun' } },
      GenericResources: null,
      // No containerd and no init binary here: versions `docker info` prints as empty.
      ContainerdCommit: { ID: '' },
      RuncCommit: { ID: '' },
      InitCommit: { ID: '' },
      DefaultRuntime: d.config.runtime,
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: '',
      // moby's words (daemon/info.go): `builtin` is the daemon's default profile.
      SecurityOptions: [`name=seccomp,profile=${seccompPolicy.defaultName()}`],
      Warnings: [],
    });
  });
}

/** `GET /system/df`; `type` filters the kinds from API 1.42 on. */
export function registerDiskUsage(r: Router, d: Daemon): void {
  r.get('/system/df', (c) => {
    const types = compareVersions(c.version, '1.42') >= 0 ? c.query.getAll('type') : [];
    c.send(200, gateDiskUsage(diskUsage(d, diskUsageKinds(types)), c.version));
  });
}

/** Go's architecture names, which clients expect. */
export function goArch(): string {
  const a = process.arch;
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}

/** `RegistryConfig.IndexConfigs`: Docker Hub, and each registry named (not by CIDR) as insecure. */
function indexConfigs(insecure: string[]): Record<string, { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }> {
  const out: Record<string, { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }> = {
    'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true },
  };
  for (const r of insecure) if (!r.includes('/')) out[r] = { Name: r, Mirrors: [], Secure: false, Official: false };
  return out;
}
