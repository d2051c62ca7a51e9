import type { NumericLimits } from '../runtime/resources.js';

/** Docker's `Config` of a container, as created and inspected. */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  MacAddress?: string;
  Healthcheck?: unknown;
}

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

export interface MountSpec {
  Type: 'bind' | 'volume' | 'tmpfs';
  Source: string;
  Target: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: string };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

/** Docker's `HostConfig`; unknown fields are kept as sent so inspect echoes them. */
export interface HostConfig extends NumericLimits {
  Binds: string[] | null;
  NetworkMode: string;
  PortBindings: Record<string, PortBinding[] | null>;
  RestartPolicy: { Name: string; MaximumRetryCount: number };
  AutoRemove: boolean;
  VolumesFrom: string[] | null;
  Mounts?: MountSpec[];
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  Dns: string[];
  DnsOptions: string[];
  DnsSearch: string[];
  ExtraHosts: string[] | null;
  Privileged: boolean;
  PublishAllPorts: boolean;
  ReadonlyRootfs: boolean;
  Tmpfs?: Record<string, string>;
  PidsLimit: number | null;
  Init: boolean | null;
  ShmSize: number;
  Sysctls?: Record<string, string>;
  Links: string[] | null;
  LogConfig: { Type: string; Config: Record<string, string> };
  [k: string]: unknown;
}

/** What the container is doing, as `State` in inspect. */
export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  OOMKilled: boolean;
  /** conmon's pid, to tell a live container from a lost one after a daemon restart. */
  ConmonPid: number;
  /** Name of the network namespace of the current run (`ip netns`), when the container has its own. */
  Netns?: string;
  /** `docker stop`/`kill` by the user: restart policies (but `always`) leave it stopped. */
  ManuallyStopped: boolean;
  RestartCount: number;
}

/** A resolved mount as the container sees it (inspect's `Mounts`). */
export interface ResolvedMount {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** tmpfs mount options. */
  Options?: string[];
  /** An anonymous volume, removed with `rm -v`. */
  Anonymous?: boolean;
}

/** The stored container document. */
export interface ContainerRecord {
  Id: string;
  Name: string;
  Created: string;
  ImageId: string;
  Path: string;
  Args: string[];
  Config: ContainerConfig;
  HostConfig: HostConfig;
  /** EndpointsConfig as sent, for the network layer. */
  NetworkingConfig: { EndpointsConfig?: Record<string, unknown> };
  State: ContainerState;
  Mounts: ResolvedMount[];
  /** Monotonic counter for `since`/`before` filters. */
  Seq: number;
}
