import { InvalidParameter } from '../errors.js';
import { parseSecurityOptions } from '../runtime/seccomp/security-options.js';
import { parseLogConfig } from './log-config.js';
import type { ContainerConfig, HostConfig, MountSpec } from './container-record.js';

const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Docker's rule for container names (moby `daemon/names`). */
export function validateName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new InvalidParameter(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return name.startsWith('/') ? name.slice(1) : name;
}

type Json = Record<string, unknown>;

function field<T>(obj: Json, key: string, kind: 'string' | 'boolean' | 'number' | 'object' | 'array', dflt: T): T {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  const ok = kind === 'array' ? Array.isArray(v) : kind === 'object' ? typeof v === 'object' && !Array.isArray(v) : typeof v === kind;
  if (!ok) {
    throw new InvalidParameter(`json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field .${key} of type ${kind}`);
  }
  return v as T;
}

/** Fields Docker types as `strslice.StrSlice`, which also takes a bare string; other lists do not. */
const STR_SLICES = new Set(['Cmd', 'Entrypoint', 'CapAdd', 'CapDrop']);

function stringList(obj: Json, key: string): string[] | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' && STR_SLICES.has(key)) return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new InvalidParameter(`json: cannot unmarshal ${typeof v} into Go struct field .${key} of type []string`);
  }
  return v as string[];
}

export interface CreateRequest {
  config: ContainerConfig;
  hostConfig: HostConfig;
  endpoints: Record<string, unknown>;
}

const RESTART_NAMES = ['', 'no', 'always', 'on-failure', 'unless-stopped'];

/** Reads and checks a `POST /containers/create` body; throws 400 on anything malformed. */
export function parseCreateRequest(body: Json): CreateRequest {
  const image = field<string>(body, 'Image', 'string', '');
  if (!image) throw new InvalidParameter('config cannot be empty in order to create a container');
  const hcIn = field<Json>(body, 'HostConfig', 'object', {});
  const netIn = field<Json>(body, 'NetworkingConfig', 'object', {});
  const labels = field<Record<string, string>>(body, 'Labels', 'object', {});
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') throw new InvalidParameter(`json: cannot unmarshal ${typeof v} into label "${k}" of type string`);
  }
  const env = stringList(body, 'Env') ?? [];
  for (const e of env) {
    if (e === '' || e.startsWith('=')) throw new InvalidParameter(`invalid environment variable: ${e}`);
  }
  const config: ContainerConfig = {
    Hostname: field(body, 'Hostname', 'string', ''),
    Domainname: field(body, 'Domainname', 'string', ''),
    User: field(body, 'User', 'string', ''),
    AttachStdin: field(body, 'AttachStdin', 'boolean', false),
    AttachStdout: field(body, 'AttachStdout', 'boolean', false),
    AttachStderr: field(body, 'AttachStderr', 'boolean', false),
    ExposedPorts: field(body, 'ExposedPorts', 'object', undefined),
    Tty: field(body, 'Tty', 'boolean', false),
    OpenStdin: field(body, 'OpenStdin', 'boolean', false),
    StdinOnce: field(body, 'StdinOnce', 'boolean', false),
    Env: env,
    Cmd: stringList(body, 'Cmd'),
    Image: image,
    Volumes: field(body, 'Volumes', 'object', null),
    WorkingDir: field(body, 'WorkingDir', 'string', ''),
    Entrypoint: stringList(body, 'Entrypoint'),
    OnBuild: null,
    Labels: labels,
    StopSignal: field(body, 'StopSignal', 'string', undefined),
    StopTimeout: field(body, 'StopTimeout', 'number', undefined),
    MacAddress: field(body, 'MacAddress', 'string', undefined),
    Healthcheck: body['Healthcheck'],
  };
  if (config.WorkingDir && !config.WorkingDir.startsWith('/')) {
    throw new InvalidParameter(`the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`);
  }
  const rp = field<Json>(hcIn, 'RestartPolicy', 'object', {});
  const restart = { Name: field<string>(rp, 'Name', 'string', ''), MaximumRetryCount: field<number>(rp, 'MaximumRetryCount', 'number', 0) };
  if (!RESTART_NAMES.includes(restart.Name)) {
    throw new InvalidParameter(
      `invalid restart policy: unknown policy '${restart.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`,
    );
  }
  if (restart.MaximumRetryCount && restart.Name !== 'on-failure') {
    throw new InvalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  }
  if (restart.MaximumRetryCount < 0) throw new InvalidParameter('invalid restart policy: maximum retry count cannot be negative');
  const autoRemove = field<boolean>(hcIn, 'AutoRemove', 'boolean', false);
  if (autoRemove && restart.Name !== '' && restart.Name !== 'no') {
    throw new InvalidParameter(`can't create 'AutoRemove' container with restart policy`);
  }
  const memory = field<number>(hcIn, 'Memory', 'number', 0);
  if (memory > 0 && memory < 6 * 1024 * 1024) throw new InvalidParameter('Minimum memory limit allowed is 6MB');
  const nanoCpus = field<number>(hcIn, 'NanoCpus', 'number', 0);
  if (nanoCpus < 0) throw new InvalidParameter('range of CPUs is from 0.01 to N');
  const portBindings = field<Record<string, { HostIp?: string; HostPort?: string }[] | null>>(hcIn, 'PortBindings', 'object', {});
  const mounts = field<MountSpec[]>(hcIn, 'Mounts', 'array', []);
  for (const m of mounts) {
    if (!['bind', 'volume', 'tmpfs'].includes(m.Type)) throw new InvalidParameter(`invalid mount config for type "${m.Type}": mount type unknown`);
    if (!m.Target || !m.Target.startsWith('/')) throw new InvalidParameter(`invalid mount config for type "${m.Type}": invalid mount path: '${m.Target ?? ''}' mount path must be absolute`);
    if (m.Type === 'bind' && !m.Source) throw new InvalidParameter(`invalid mount config for type "bind": field Source must not be empty`);
  }
  const securityOpt = stringList(hcIn, 'SecurityOpt');
  // Decodes a sent seccomp profile now: a bad one is refused before anything is created.
  parseSecurityOptions(securityOpt);
  const hostConfig: HostConfig = {
    ...hcIn,
    Binds: stringList(hcIn, 'Binds'),
    NetworkMode: field(hcIn, 'NetworkMode', 'string', '') || 'bridge',
    PortBindings: Object.fromEntries(
      Object.entries(portBindings).map(([k, v]) => [k, (v ?? []).map((b) => ({ HostIp: b.HostIp ?? '', HostPort: b.HostPort ?? '' }))]),
    ),
    RestartPolicy: { Name: restart.Name || 'no', MaximumRetryCount: restart.MaximumRetryCount },
    AutoRemove: autoRemove,
    VolumesFrom: stringList(hcIn, 'VolumesFrom'),
    Mounts: mounts,
    CapAdd: stringList(hcIn, 'CapAdd'),
    CapDrop: stringList(hcIn, 'CapDrop'),
    Dns: stringList(hcIn, 'Dns') ?? [],
    DnsOptions: stringList(hcIn, 'DnsOptions') ?? [],
    DnsSearch: stringList(hcIn, 'DnsSearch') ?? [],
    ExtraHosts: stringList(hcIn, 'ExtraHosts'),
    Privileged: field(hcIn, 'Privileged', 'boolean', false),
    PublishAllPorts: field(hcIn, 'PublishAllPorts', 'boolean', false),
    ReadonlyRootfs: field(hcIn, 'ReadonlyRootfs', 'boolean', false),
    Tmpfs: field(hcIn, 'Tmpfs', 'object', undefined),
    Memory: memory,
    MemorySwap: field(hcIn, 'MemorySwap', 'number', 0),
    NanoCpus: nanoCpus,
    CpuShares: field(hcIn, 'CpuShares', 'number', 0),
    CpuQuota: field(hcIn, 'CpuQuota', 'number', 0),
    CpuPeriod: field(hcIn, 'CpuPeriod', 'number', 0),
    PidsLimit: field(hcIn, 'PidsLimit', 'number', null),
    Init: field(hcIn, 'Init', 'boolean', null),
    ShmSize: field(hcIn, 'ShmSize', 'number', 0),
    Sysctls: field(hcIn, 'Sysctls', 'object', undefined),
    Links: stringList(hcIn, 'Links'),
    SecurityOpt: securityOpt,
    // conmon writes a k8s-file log, but what clients see is Docker's default driver: docker-py's
    // `containers.run()` and compose read output back only from a `json-file` (or journald) one.
    LogConfig: parseLogConfig(hcIn['LogConfig']),
  };
  for (const e of hostConfig.ExtraHosts ?? []) {
    const idx = e.indexOf(':');
    if (idx <= 0 || idx === e.length - 1) throw new InvalidParameter(`invalid IP address in add-host: "${e.slice(idx + 1)}"`);
  }
  const endpoints = field<Json>(netIn, 'EndpointsConfig', 'object', {});
  migrateContainerMac(config, hostConfig, endpoints);
  return { config, hostConfig, endpoints };
}

/**
 * `Config.MacAddress` (API < 1.44, and still accepted later) belongs to the endpoint of the
 * container's main network: it is moved there as moby's `handleMACAddressBC` does, so the network
 * layer reads a MAC from one place only.
 */
function migrateContainerMac(config: ContainerConfig, hc: HostConfig, endpoints: Json): void {
  const mac = config.MacAddress;
  if (!mac) return;
  const mode = hc.NetworkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
    throw new InvalidParameter('conflicting options: mac-address and the network mode');
  }
  const name = mode === 'default' ? 'bridge' : mode;
  const key = name in endpoints ? name : mode in endpoints ? mode : undefined;
  if (key === undefined) {
    if (Object.keys(endpoints).length) {
      throw new InvalidParameter('if a container-wide MAC address is supplied, HostConfig.NetworkMode must match the identity of a network in NetworkSettings.Networks');
    }
    endpoints[name] = { MacAddress: mac };
    return;
  }
  const ep = (endpoints[key] ?? {}) as Json;
  if (!ep['MacAddress']) endpoints[key] = { ...ep, MacAddress: mac };
  else if (ep['MacAddress'] !== mac) {
    throw new InvalidParameter('the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty');
  }
}

/** A `-v` bind string: `src:dst[:opts]`, `dst` alone for an anonymous volume. */
export interface ParsedBind {
  source: string;
  target: string;
  readOnly: boolean;
  propagation: string;
  /** Named volume rather than a host path. */
  isVolume: boolean;
}

export function parseBind(spec: string): ParsedBind {
  const parts = spec.split(':');
  let source = '';
  let target: string;
  let opts = '';
  if (parts.length === 1) target = parts[0]!;
  else if (parts.length === 2) [source, target] = parts as [string, string];
  else if (parts.length === 3) [source, target, opts] = parts as [string, string, string];
  else throw new InvalidParameter(`invalid spec: ${spec}: too many colons`);
  if (!target.startsWith('/')) throw new InvalidParameter(`invalid volume specification: '${spec}': invalid mount config for type "bind": invalid mount path: '${target}' mount path must be absolute`);
  let readOnly = false;
  let propagation = '';
  for (const o of opts.split(',').filter(Boolean)) {
    if (o === 'ro') readOnly = true;
    else if (o === 'rw') readOnly = false;
    else if (['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) propagation = o;
    else if (['z', 'Z', 'nocopy', 'consistent', 'cached', 'delegated'].includes(o)) continue;
    else throw new InvalidParameter(`invalid mode: ${o}`);
  }
  const isVolume = source !== '' && !source.startsWith('/');
  if (isVolume && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(source)) {
    throw new InvalidParameter(`create ${source}: "${source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
  return { source, target, readOnly, propagation, isVolume };
}
