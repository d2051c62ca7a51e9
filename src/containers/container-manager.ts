import {
  closeSync,
  constants as fsc,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
  writeSync,
  type FSWatcher,
} from 'node:fs';
import { MNT_DETACH, native } from '../sys/native.js';
import { join } from 'node:path';
import type { Daemon } from '../daemon.js';
import { Conflict, InvalidParameter, NotFound, NotModified, SystemError, errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { KeyedLock } from '../keyed-lock.js';
import { run, which } from '../sys/runner.js';
import { ConmonRuntime, RuntimeError } from '../runtime/conmon-runtime.js';
import type { Runtime } from '../runtime/runtime.js';
import { containerSpec } from '../runtime/oci-spec.js';
import { containerSize } from './container-size.js';
import { parseUpdateRequest, updateContainer } from './container-update.js';
import { NetnsManager } from '../network/netns.js';
import type { NetworkAttacher } from '../network/network-attacher.js';
import type { ImageRecord } from '../images/image-store.js';
import type { ContainerRecord, ContainerState, ResolvedMount } from './container-record.js';
import { parseBind, parseCreateRequest, validateName } from './create-request.js';
import { newId, randomName } from './names.js';
import { hostResolvConf, mergeEnv, renderHosts, renderResolvConf, resolveUser } from './etc-files.js';
import { withoutLink } from './legacy-links.js';
import { logLimits } from './log-config.js';
import { LogRotator } from './log-rotator.js';
import { ensureWorkingDir } from './working-dir.js';
import { initLayer } from './init-layer.js';

const log = logger('arca:containers');

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

interface Waiter {
  condition: WaitCondition;
  resolve: (r: { StatusCode: number; Error: { Message: string } | null }) => void;
}

/** Signals by name and number, as `docker kill -s` and StopSignal accept them. */
const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

export function parseSignal(sig: string): string {
  const s = sig.toUpperCase().replace(/^SIG/, '');
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw new InvalidParameter(`Invalid signal: ${sig}`);
    return String(n);
  }
  if (!(s in SIGNALS)) throw new InvalidParameter(`Invalid signal: ${sig}`);
  return s;
}

/**
 * Containers: create, start, stop, remove, and what follows an exit (cleanup, restart
 * policies, auto-remove). The database is the truth; a restarted daemon finds running
 * containers through their conmon and exit files (live-restore).
 */
export class ContainerManager {
  readonly runtime: Runtime;
  readonly netns: NetnsManager;
  /** The network layer; the daemon wires its NetworkManager in right after construction. */
  attacher!: NetworkAttacher;
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly locks = new KeyedLock();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly exitListeners = new Map<string, Set<() => void>>();
  private readonly startListeners = new Map<string, Set<() => void>>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly logRotator = new LogRotator();
  private watcher?: FSWatcher;
  private sweepTimer?: NodeJS.Timeout;
  private seq = 0;
  private readonly containersDir: string;

  constructor(private readonly d: Daemon) {
    this.runtime = new ConmonRuntime(d.config.runtime, d.config.execRoot);
    this.netns = new NetnsManager(d.tag, join(d.config.execRoot, 'netns-pool'));
    this.containersDir = join(d.config.root, 'containers');
    mkdirSync(this.containersDir, { recursive: true });
    for (const row of d.store.db.prepare('SELECT doc FROM containers').all() as { doc: string }[]) {
      const c = JSON.parse(row.doc) as ContainerRecord;
      this.byId.set(c.Id, c);
      this.seq = Math.max(this.seq, c.Seq);
    }
  }

  // ---- lookups ---------------------------------------------------------------------------

  /** Finds by full id, name (with or without `/`), or unique id prefix. */
  find(ref: string): ContainerRecord | undefined {
    const direct = this.byId.get(ref);
    if (direct) return direct;
    const name = ref.startsWith('/') ? ref.slice(1) : ref;
    for (const c of this.byId.values()) if (c.Name === name) return c;
    if (/^[0-9a-f]+$/.test(ref)) {
      const hits = [...this.byId.values()].filter((c) => c.Id.startsWith(ref));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw new InvalidParameter(`multiple IDs found with provided prefix: ${ref}`);
    }
    return undefined;
  }

  get(ref: string): ContainerRecord {
    const c = this.find(ref);
    if (!c) throw new NotFound(`No such container: ${ref}`);
    return c;
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()].sort((a, b) => b.Seq - a.Seq);
  }

  dir(id: string): string {
    return join(this.containersDir, id);
  }

  logPath(id: string): string {
    return join(this.dir(id), 'container.log');
  }

  sandboxKey(c: ContainerRecord): string {
    const m = c.HostConfig.NetworkMode;
    if (m === 'host') return '';
    if (m.startsWith('container:')) {
      const other = this.find(m.slice('container:'.length));
      return other ? this.sandboxKey(other) : '';
    }
    return this.netns.pathOf(this.netnsName(c));
  }

  /** The container's namespace name: recorded per run, or the pre-pool name of old records. */
  private netnsName(c: ContainerRecord): string {
    return c.State.Netns ?? this.netns.nameFor(c.Id);
  }

  containersUsingImage(imageId: string): string[] {
    return this.all().filter((c) => c.ImageId === imageId).map((c) => c.Id);
  }

  containersUsingVolume(name: string): string[] {
    return this.all()
      .filter((c) => c.Mounts.some((m) => m.Type === 'volume' && m.Name === name))
      .map((c) => c.Id);
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    for (const c of this.byId.values()) {
      if (c.State.Status === 'running' || c.State.Status === 'restarting') running++;
      else if (c.State.Status === 'paused') paused++;
    }
    return { total: this.byId.size, running, paused, stopped: this.byId.size - running - paused };
  }

  private save(c: ContainerRecord): void {
    this.d.store.db
      .prepare('INSERT INTO containers(id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc')
      .run(c.Id, c.Name, JSON.stringify(c));
    this.byId.set(c.Id, c);
  }

  /** Serialises operations on one container. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  /**
   * Runs fn while no start, exit cleanup or removal of the container can happen, as Docker holds
   * the container's lock for the whole of an archive read (so a rootfs mounted for it stays).
   */
  exclusive<T>(ref: string, fn: (c: ContainerRecord) => Promise<T>): Promise<T> {
    const c = this.get(ref);
    return this.locked(c.Id, async () => {
      const cur = this.byId.get(c.Id);
      if (!cur) throw new NotFound(`No such container: ${ref}`);
      return fn(cur);
    });
  }

  /** The overlay options of a container's rootfs: its image's layers and Docker's init layer under its own upper dir. */
  overlayOptions(c: ContainerRecord): string {
    const dir = this.dir(c.Id);
    const lower = [initLayer(dir), ...this.d.images.lowerDirs(this.d.images.get(c.ImageId))];
    return `lowerdir=${lower.join(':')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`;
  }


  // ---- create ----------------------------------------------------------------------------

  async create(body: Record<string, unknown>, nameParam: string | null): Promise<{ Id: string; Warnings: string[] }> {
    const req = parseCreateRequest(body);
    const name = nameParam ? validateName(nameParam) : undefined;
    const image = this.d.images.get(req.config.Image);
    const imgCfg = image.config.config ?? {};
    const id = newId();
    const config = req.config;
    if (!config.Hostname) config.Hostname = req.hostConfig.NetworkMode === 'host' ? osHostname() : id.slice(0, 12);
    config.Env = mergeEnv(imgCfg.Env ?? [], config.Env);
    if (!config.Env.some((e) => e.startsWith('PATH='))) {
      config.Env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    }
    // An explicit entrypoint drops the image's Cmd (Docker semantics).
    const entrypoint = config.Entrypoint ?? imgCfg.Entrypoint ?? null;
    const cmd = config.Cmd ?? (config.Entrypoint ? null : (imgCfg.Cmd ?? null));
    config.Entrypoint = config.Entrypoint ?? imgCfg.Entrypoint ?? null;
    config.Cmd = cmd;
    config.WorkingDir = config.WorkingDir || imgCfg.WorkingDir || '';
    config.User = config.User || imgCfg.User || '';
    config.Labels = { ...(imgCfg.Labels ?? {}), ...config.Labels };
    if (imgCfg.ExposedPorts) config.ExposedPorts = { ...imgCfg.ExposedPorts, ...(config.ExposedPorts ?? {}) };
    // moby's merge: the image's VOLUMEs join the request's; none at all is null, not {}.
    const volumes = { ...(imgCfg.Volumes ?? {}), ...(config.Volumes ?? {}) };
    config.Volumes = Object.keys(volumes).length ? volumes : null;
    if (!config.StopSignal && imgCfg.StopSignal) config.StopSignal = imgCfg.StopSignal;
    if (config.StopSignal) parseSignal(config.StopSignal);
    const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
    if (!argv.length) throw new InvalidParameter('no command specified');
    const mode = req.hostConfig.NetworkMode;
    if (mode.startsWith('container:')) {
      // Docker resolves the name when it can and leaves it for start otherwise (moby#49374): a 404
      // here would send the CLI pulling the image.
      const other = this.find(mode.slice('container:'.length));
      if (other) req.hostConfig.NetworkMode = `container:${other.Id}`;
    }

    const c: ContainerRecord = {
      Id: id,
      Name: name ?? '',
      Created: new Date().toISOString(),
      ImageId: image.id,
      Path: argv[0]!,
      Args: argv.slice(1),
      Config: config,
      HostConfig: req.hostConfig,
      NetworkingConfig: { EndpointsConfig: req.endpoints },
      State: {
        Status: 'created',
        Pid: 0,
        ExitCode: 0,
        Error: '',
        StartedAt: '0001-01-01T00:00:00Z',
        FinishedAt: '0001-01-01T00:00:00Z',
        OOMKilled: false,
        ConmonPid: 0,
        ManuallyStopped: false,
        RestartCount: 0,
      },
      Mounts: [],
      Seq: ++this.seq,
    };
    this.attacher.validate(c);
    if (name) this.assertNameFree(name);
    c.Mounts = this.resolveMounts(c, image);

    const undo: (() => void)[] = [];
    try {
      const dir = this.dir(id);
      for (const sub of ['upper', 'work', 'rootfs']) mkdirSync(join(dir, sub), { recursive: true });
      undo.push(() => rmSync(dir, { recursive: true, force: true }));
      for (const m of c.Mounts) {
        if (m.Type === 'volume' && m.Name) {
          const existed = this.volumeExists(m.Name);
          const v = this.d.volumes.ensure(m.Name, m.Anonymous ? { 'com.docker.volume.anonymous': '' } : {});
          m.Source = v.Mountpoint;
          if (!existed) undo.push(() => this.d.volumes.remove(m.Name!, true));
        }
      }
      writeFileSync(join(dir, 'container.log'), '');
      this.d.store.tx(() => {
        if (!c.Name) c.Name = this.freeRandomName();
        else this.assertNameFree(c.Name);
        this.save(c);
      });
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          u();
        } catch {
          /* best effort */
        }
      }
      throw err;
    }
    this.d.events.container('create', c);
    log.debug('created', { id: id.slice(0, 12), name: c.Name });
    return { Id: id, Warnings: [] };
  }

  private volumeExists(name: string): boolean {
    try {
      this.d.volumes.get(name);
      return true;
    } catch {
      return false;
    }
  }

  private assertNameFree(name: string): void {
    for (const other of this.byId.values()) {
      if (other.Name === name) {
        throw new Conflict(
          `Conflict. The container name "/${name}" is already in use by container "${other.Id}". You have to remove (or rename) that container to be able to reuse that name.`,
        );
      }
    }
  }

  private freeRandomName(): string {
    const taken = new Set([...this.byId.values()].map((c) => c.Name));
    for (let i = 0; ; i++) {
      const n = randomName(i > 5 ? 1 : 0);
      if (!taken.has(n)) return n;
    }
  }

  /** Binds, `--mount`, `--tmpfs` and the image's VOLUMEs, checked before anything is created. */
  private resolveMounts(c: ContainerRecord, image: ImageRecord): ResolvedMount[] {
    const out: ResolvedMount[] = [];
    const seen = new Set<string>();
    const add = (m: ResolvedMount): void => {
      if (seen.has(m.Destination)) throw new InvalidParameter(`Duplicate mount point: ${m.Destination}`);
      seen.add(m.Destination);
      out.push(m);
    };
    for (const b of c.HostConfig.Binds ?? []) {
      const p = parseBind(b);
      if (p.isVolume) {
        add({ Type: 'volume', Name: p.source, Source: '', Destination: p.target, Driver: 'local', Mode: p.readOnly ? 'ro' : 'z', RW: !p.readOnly, Propagation: '' });
      } else if (p.source === '') {
        add({ Type: 'volume', Name: newId(), Source: '', Destination: p.target, Driver: 'local', Mode: '', RW: true, Propagation: '', Anonymous: true });
      } else {
        if (!existsSync(p.source)) mkdirSync(p.source, { recursive: true });
        add({ Type: 'bind', Source: p.source, Destination: p.target, Mode: p.readOnly ? 'ro' : '', RW: !p.readOnly, Propagation: p.propagation || 'rprivate' });
      }
    }
    for (const m of c.HostConfig.Mounts ?? []) {
      if (m.Type === 'bind') {
        if (!existsSync(m.Source)) throw new InvalidParameter(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
        add({ Type: 'bind', Source: m.Source, Destination: m.Target, Mode: '', RW: !m.ReadOnly, Propagation: m.BindOptions?.Propagation || 'rprivate' });
      } else if (m.Type === 'volume') {
        const anon = !m.Source;
        add({ Type: 'volume', Name: m.Source || newId(), Source: '', Destination: m.Target, Driver: 'local', Mode: 'z', RW: !m.ReadOnly, Propagation: '', Anonymous: anon });
      } else {
        const opts: string[] = [];
        if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${m.TmpfsOptions.SizeBytes}`);
        if (m.TmpfsOptions?.Mode) opts.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
        add({ Type: 'tmpfs', Source: '', Destination: m.Target, Mode: '', RW: !m.ReadOnly, Propagation: '', Options: opts });
      }
    }
    for (const [dest, optStr] of Object.entries(c.HostConfig.Tmpfs ?? {})) {
      if (!dest.startsWith('/')) throw new InvalidParameter(`invalid mount path: '${dest}' mount path must be absolute`);
      add({ Type: 'tmpfs', Source: '', Destination: dest, Mode: '', RW: true, Propagation: '', Options: optStr ? optStr.split(',') : [] });
    }
    const vols = { ...(image.config.config?.Volumes ?? {}), ...(c.Config.Volumes ?? {}) };
    for (const dest of Object.keys(vols)) {
      if (seen.has(dest)) continue;
      add({ Type: 'volume', Name: newId(), Source: '', Destination: dest, Driver: 'local', Mode: '', RW: true, Propagation: '', Anonymous: true });
    }
    return out;
  }

  // ---- start -----------------------------------------------------------------------------

  async start(ref: string): Promise<void> {
    const c = this.get(ref);
    try {
      await this.locked(c.Id, () => this.startLocked(c.Id, false));
    } catch (err) {
      // `run --rm` waits for removal: a container that could not start goes at once (Docker).
      if (c.HostConfig.AutoRemove && !(err instanceof NotModified) && this.byId.has(c.Id)) {
        await this.remove(c.Id, { force: true, volumes: true }).catch((e: unknown) => log.warn('auto-remove after failed start', { error: errorMessage(e) }));
      }
      throw err;
    }
  }

  private async startLocked(id: string, fromRestartPolicy: boolean): Promise<void> {
    const c = this.byId.get(id);
    if (!c) throw new NotFound(`No such container: ${id}`);
    if (c.State.Status === 'running' || c.State.Status === 'paused') {
      if (fromRestartPolicy) return;
      if (c.State.Status === 'paused') throw new Conflict('cannot start a paused container, try unpause instead');
      throw new NotModified('container already started');
    }
    if (c.State.Status === 'removing') throw new Conflict(`container ${id} is marked for removal and cannot be started`);
    const dir = this.dir(id);
    const rootfs = join(dir, 'rootfs');
    const undo: (() => Promise<void>)[] = [];
    const t0 = performance.now();
    const mark: Record<string, number> = {};
    const lap = (k: string): void => {
      mark[k] = Math.round(performance.now() - t0);
    };
    try {
      // Leftovers of a previous run (runc state, mounts) go first: start is a fresh setup.
      await this.runtime.delete(id, true).catch(() => {});
      const mode = c.HostConfig.NetworkMode;
      const ownNetns = mode !== 'host' && !mode.startsWith('container:');
      let nsName = '';
      // The rootfs mount and the namespace are independent: make them at once.
      const mounting = isMounted(rootfs)
        ? Promise.resolve(false)
        : mountOverlay(this.overlayOptions(c), rootfs).then(() => true);
      const nsMaking = ownNetns ? this.netns.take() : Promise.resolve(undefined);
      const [mounted, ns] = await Promise.allSettled([mounting, nsMaking]);
      if (mounted.status === 'fulfilled' && mounted.value) undo.push(() => umount(rootfs));
      if (ns.status === 'fulfilled' && ns.value) {
        nsName = ns.value;
        c.State.Netns = nsName;
        undo.push(() => this.netns.delete(nsName));
      }
      if (mounted.status === 'rejected') throw mounted.reason;
      if (ns.status === 'rejected') throw ns.reason;
      lap('mount+netns');
      const user = resolveUser(rootfs, c.Config.User);
      let env = [...c.Config.Env];
      if (!env.some((e) => e.startsWith('HOSTNAME='))) env.unshift(`HOSTNAME=${c.Config.Hostname}`);
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
      if (c.Config.Tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
      // Link variables come first: the container's own Env overrides them (moby).
      env = mergeEnv(this.attacher.linkEnv?.(c) ?? [], env);
      if (c.Config.WorkingDir) ensureWorkingDir(rootfs, c.Config.WorkingDir);
      for (const m of c.Mounts) {
        if (m.Type === 'volume' && m.Name) m.Source = this.d.volumes.ensure(m.Name, m.Anonymous ? { 'com.docker.volume.anonymous': '' } : {}).Mountpoint;
      }

      let netnsPath: string | undefined;
      if (mode.startsWith('container:')) {
        const ref = mode.slice('container:'.length);
        const other = this.find(ref);
        if (!other) throw new NotFound(`No such container: ${ref}`);
        if (other.State.Status !== 'running') throw new Conflict(`cannot join network of a non running container: ${ref}`);
        netnsPath = this.sandboxKey(other);
        if (!netnsPath) netnsPath = undefined;
      } else if (ownNetns) {
        netnsPath = this.netns.pathOf(nsName);
        await this.attacher.attach(c, netnsPath);
        // The namespace is deleted by the undo step pushed when it was taken, right after this one.
        undo.push(() => this.attacher.detach(c, { closing: true }));
      }

      const hostsPath = join(dir, 'hosts');
      const hostnamePath = join(dir, 'hostname');
      const resolvPath = join(dir, 'resolv.conf');
      if (mode.startsWith('container:')) {
        const other = this.find(mode.slice('container:'.length))!;
        for (const f of ['hosts', 'hostname', 'resolv.conf']) writeFileSync(join(dir, f), readFileSync(join(this.dir(other.Id), f)));
      } else {
        writeFileSync(hostsPath, renderHosts(this.attacher.hostsEntries(c), this.attacher.extraHosts?.(c) ?? c.HostConfig.ExtraHosts ?? []));
        writeFileSync(hostnamePath, c.Config.Hostname + '\n');
        const hostResolv = hostResolvConf();
        writeFileSync(
          resolvPath,
          this.attacher.resolvConf?.(c, hostResolv) ??
          renderResolvConf(hostResolv, {
            dns: c.HostConfig.Dns,
            search: c.HostConfig.DnsSearch,
            options: c.HostConfig.DnsOptions,
            keepLoopback: mode === 'host',
          }),
        );
      }

      lap('files');
      // `--init`: Docker's docker-init (tini) runs as pid 1, forwards signals and reaps; it is
      // bind-mounted read-only and left out of the container's Mounts, as Docker does.
      let args = [c.Path, ...c.Args];
      let specOf = c;
      if (c.HostConfig.Init) {
        const init = which('docker-init') ?? which('tini-static');
        if (!init) throw new SystemError('exec: "docker-init": executable file not found in $PATH (apt-get install tini)');
        args = ['/sbin/docker-init', '--', ...args];
        specOf = { ...c, Mounts: [...c.Mounts, { Type: 'bind', Source: init, Destination: '/sbin/docker-init', Mode: 'ro', RW: false, Propagation: 'rprivate' }] };
      }
      const spec = containerSpec({
        c: specOf,
        rootfs,
        args,
        env,
        cwd: c.Config.WorkingDir || '/',
        user,
        netnsPath,
        hostsPath,
        hostnamePath,
        resolvConfPath: resolvPath,
        cgroupsPath: `/arca/${id}`,
      });
      this.runtime.prepareSpec?.(spec);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      for (const f of ['init.pid', 'conmon.pid', 'oom']) rmSync(join(dir, f), { force: true });
      rmSync(join(this.runtime.exitDir, id), { force: true });

      const { pid, conmonPid } = await this.runtime.create({
        id,
        bundle: dir,
        logPath: this.logPath(id),
        stdin: c.Config.OpenStdin,
        // StdinOnce closes stdin at the first client's EOF, but never a terminal's (Docker): a
        // client detaching from `run -it` must leave the shell reachable for the next attach.
        leaveStdinOpen: c.Config.OpenStdin && (!c.Config.StdinOnce || c.Config.Tty),
        tty: c.Config.Tty,
        // Driver `none` keeps no log, but attach streams from this file: conmon keeps it small.
        ...(c.HostConfig.LogConfig.Type === 'none' ? { logSizeMax: 1024 * 1024 } : {}),
      });
      undo.push(() => this.runtime.delete(id, true));
      lap('create');
      await this.runtime.start(id);
      lap('start');
      c.State = {
        ...c.State,
        Status: 'running',
        Pid: pid,
        ConmonPid: conmonPid || readPidFile(join(dir, 'conmon.pid')),
        ExitCode: 0,
        Error: '',
        StartedAt: new Date().toISOString(),
        FinishedAt: c.State.FinishedAt,
        OOMKilled: false,
        ManuallyStopped: false,
      };
      this.save(c);
      this.d.events.volumeMounts('mount', c);
      this.d.events.container('start', c);
      this.watchLog(c);
      this.fire(this.startListeners, id);
      log.debug('started', { id: id.slice(0, 12), pid, ms: mark });
    } catch (err) {
      for (const u of undo.reverse()) await u().catch((e: unknown) => log.warn('start rollback step failed', { error: errorMessage(e) }));
      c.State.Netns = undefined;
      if (err instanceof RuntimeError) {
        const msg = `failed to create task for container: failed to create shim task: OCI runtime create failed: ${err.message}: unknown`;
        c.State.Error = msg;
        c.State.ExitCode = /executable file not found|no such file or directory/.test(msg) ? 127 : /permission denied/.test(msg) ? 126 : 128;
        this.save(c);
        // Docker answers 400 for a command that cannot be run, 500 otherwise; the CLI maps the text to 126/127.
        throw c.State.ExitCode === 128 ? new SystemError(msg) : new InvalidParameter(msg);
      }
      throw err;
    }
  }

  // ---- exit handling -----------------------------------------------------------------------

  /** Starts watching conmon's exit files and reconciles the database with the machine. */
  async recover(): Promise<void> {
    this.watcher = watch(this.runtime.exitDir, (_ev, file) => {
      if (file) void this.onExitFile(String(file));
    });
    this.watcher.on('error', (e) => log.error('exit watcher failed', { error: e.message }));
    // inotify is the fast path; a slow sweep catches anything it missed.
    this.sweepTimer = setInterval(() => this.sweepExits(), 2000);
    this.sweepTimer.unref();

    for (const c of this.all()) {
      if (c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting') {
        const exitFile = join(this.runtime.exitDir, c.Id);
        if (existsSync(exitFile)) {
          await this.onExitFile(c.Id);
        } else if (c.State.ConmonPid && pidAlive(c.State.ConmonPid) && (await this.runtime.state(c.Id))) {
          log.info('live-restore: container still running', { id: c.Id.slice(0, 12) });
          this.watchLog(c);
        } else {
          // conmon is gone without an exit file: the machine rebooted or conmon was killed.
          log.warn('container lost while the daemon was away', { id: c.Id.slice(0, 12) });
          await this.signal(c, 'KILL').catch(() => {});
          await this.finishExit(c.Id, 255, 'container lost while the daemon was down');
        }
      } else if (c.State.Status === 'removing') {
        await this.remove(c.Id, { force: true, volumes: false }).catch((e: unknown) => log.warn('finishing removal failed', { error: errorMessage(e) }));
      }
    }
    await this.sweepLeftovers();
    for (const c of this.all()) {
      const p = c.HostConfig.RestartPolicy.Name;
      if (c.State.Status === 'exited' && !c.State.ManuallyStopped && (p === 'always' || p === 'unless-stopped')) {
        void this.locked(c.Id, () => this.startLocked(c.Id, true)).catch((e: unknown) => log.warn('restart at boot failed', { id: c.Id.slice(0, 12), error: errorMessage(e) }));
      }
    }
  }

  /** Removes what no record explains: folders, mounts, namespaces, runc state of a killed daemon. */
  private async sweepLeftovers(): Promise<void> {
    for (const dir of safeReaddir(this.containersDir)) {
      if (this.byId.has(dir)) continue;
      const p = join(this.containersDir, dir);
      await umount(join(p, 'rootfs')).catch(() => {});
      rmSync(p, { recursive: true, force: true });
      log.info('removed leftover container folder', { id: dir.slice(0, 12) });
    }
    const live = new Set(this.all().filter((c) => c.State.Status === 'running' || c.State.Status === 'paused').map((c) => c.Id));
    for (const c of this.all()) {
      if (live.has(c.Id)) continue;
      const rootfs = join(this.dir(c.Id), 'rootfs');
      if (isMounted(rootfs)) await umount(rootfs).catch(() => {});
      if (c.State.Status === 'created' || c.State.Status === 'exited' || c.State.Status === 'dead') {
        const st = await this.runtime.state(c.Id).catch(() => undefined);
        if (st) await this.runtime.delete(c.Id, true).catch(() => {});
      }
    }
    const liveNs = new Set([...live].map((id) => this.netnsName(this.byId.get(id)!)));
    for (const ns of this.netns.list()) if (!liveNs.has(ns)) await this.netns.delete(ns);
    this.netns.refill();
    for (const f of safeReaddir(this.runtime.exitDir)) if (!this.byId.has(f)) rmSync(join(this.runtime.exitDir, f), { force: true });
    for (const f of safeReaddir(this.runtime.socketDir)) if (!this.byId.has(f)) rmSync(join(this.runtime.socketDir, f), { force: true });
  }

  private sweepExits(): void {
    for (const f of safeReaddir(this.runtime.exitDir)) void this.onExitFile(f);
  }

  private async onExitFile(id: string): Promise<void> {
    const c = this.byId.get(id);
    const file = join(this.runtime.exitDir, id);
    if (!c) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      return;
    }
    if (text === '') return; // conmon is still writing it
    await this.locked(id, async () => {
      if (!existsSync(file)) return;
      const cur = this.byId.get(id);
      if (!cur || (cur.State.Status !== 'running' && cur.State.Status !== 'paused')) {
        rmSync(file, { force: true });
        return;
      }
      const code = Number(text);
      // conmon wrote the file when the process ended: its mtime is the real finish time, even
      // when the daemon was down then (live-restore).
      let finishedAt: string | undefined;
      try {
        finishedAt = statSync(file).mtime.toISOString();
      } catch {
        /* now, then */
      }
      await this.finishExit(id, Number.isFinite(code) ? code : 255, '', finishedAt);
    });
    this.afterExit(id);
  }

  /** Cleans up after the process ended and records the exit. Runs under the container's lock. */
  private async finishExit(id: string, code: number, error: string, finishedAt?: string): Promise<void> {
    const c = this.byId.get(id);
    if (!c) return;
    this.logRotator.unwatch(id);
    const errors: unknown[] = [];
    // The process is gone: runtime state, network and rootfs are independent, undo them at once.
    const ownNetns = c.HostConfig.NetworkMode !== 'host' && !c.HostConfig.NetworkMode.startsWith('container:');
    // conmon leaves an `oom` file in the bundle when the cgroup's OOM killer fired during the run.
    const oomKilled = existsSync(join(this.dir(id), 'oom'));
    // moby records the exit and tells `die` before its cleanup: watchers see die, then the network's disconnect.
    c.State = { ...c.State, Status: 'exited', Pid: 0, ExitCode: code, Error: error, FinishedAt: finishedAt ?? new Date().toISOString(), ConmonPid: 0, OOMKilled: oomKilled };
    if (oomKilled) this.d.events.container('oom', c);
    this.d.events.container('die', c, { exitCode: String(code), execDuration: String(Math.max(0, Math.round((Date.parse(c.State.FinishedAt) - Date.parse(c.State.StartedAt)) / 1000))) });
    const t0 = performance.now();
    const took: Record<string, number> = {};
    const timed = <T>(k: string, p: Promise<T>): Promise<T> => p.finally(() => (took[k] = Math.round(performance.now() - t0)));
    const results = await Promise.allSettled([
      timed('runtime', this.runtime.delete(id, true)),
      timed('network', this.attacher.detach(c, { closing: ownNetns }).then(() => (ownNetns ? this.netns.delete(this.netnsName(c)) : undefined))),
      timed('rootfs', umount(join(this.dir(id), 'rootfs'))),
    ]);
    for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
    rmSync(join(this.runtime.exitDir, id), { force: true });
    for (const e of errors) log.warn('cleanup after exit', { id: id.slice(0, 12), error: errorMessage(e) });
    this.save(c);
    this.d.events.volumeMounts('unmount', c);
    log.debug('exited', { id: id.slice(0, 12), code, ms: took });
    this.fire(this.exitListeners, id);
    this.notifyWaiters(id, 'exit');
  }

  /** Auto-remove and restart policies, after the exit is recorded. */
  private afterExit(id: string): void {
    const c = this.byId.get(id);
    if (!c || c.State.Status !== 'exited') return;
    if (c.HostConfig.AutoRemove) {
      void this.remove(id, { force: true, volumes: true }).catch((e: unknown) => log.warn('auto-remove failed', { error: errorMessage(e) }));
      return;
    }
    const p = c.HostConfig.RestartPolicy;
    let restart = false;
    if (!c.State.ManuallyStopped) {
      if (p.Name === 'always' || p.Name === 'unless-stopped') restart = true;
      else if (p.Name === 'on-failure' && c.State.ExitCode !== 0) {
        restart = !p.MaximumRetryCount || c.State.RestartCount < p.MaximumRetryCount;
      }
    }
    if (!restart) return;
    // Docker backs off from 100 ms, doubling; reset when a run lasted 10 s.
    const ranMs = Date.parse(c.State.FinishedAt) - Date.parse(c.State.StartedAt);
    const attempt = ranMs > 10_000 ? 0 : Math.min(c.State.RestartCount, 10);
    const delay = Math.min(100 * 2 ** attempt, 60_000);
    c.State.Status = 'restarting';
    c.State.RestartCount++;
    this.save(c);
    const t = setTimeout(() => {
      this.restartTimers.delete(id);
      void this.locked(id, async () => {
        const cur = this.byId.get(id);
        if (!cur || cur.State.Status !== 'restarting') return;
        // It stays `restarting` until it runs (Docker), so a stop meanwhile knows to wait for it.
        try {
          await this.startLocked(id, true);
        } catch (e) {
          cur.State.Status = 'exited';
          this.save(cur);
          throw e;
        }
      }).catch((e: unknown) => log.warn('restart failed', { id: id.slice(0, 12), error: errorMessage(e) }));
    }, delay);
    this.restartTimers.set(id, t);
  }

  private fire(map: Map<string, Set<() => void>>, id: string): void {
    const set = map.get(id);
    if (!set) return;
    map.delete(id);
    for (const fn of set) fn();
  }

  private on(map: Map<string, Set<() => void>>, id: string, fn: () => void): () => void {
    let set = map.get(id);
    if (!set) map.set(id, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  /** Calls fn once at the container's next exit. Returns an unsubscribe function. */
  onNextExit(id: string, fn: () => void): () => void {
    return this.on(this.exitListeners, id, fn);
  }

  onNextStart(id: string, fn: () => void): () => void {
    return this.on(this.startListeners, id, fn);
  }

  private waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const c = this.byId.get(id);
    if (!c || (c.State.Status !== 'running' && c.State.Status !== 'paused')) return Promise.resolve(true);
    return new Promise((resolve) => {
      let off = (): void => {};
      const t = setTimeout(() => {
        off();
        resolve(false);
      }, timeoutMs);
      off = this.onNextExit(id, () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  // ---- wait --------------------------------------------------------------------------------

  wait(ref: string, condition: WaitCondition): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.get(ref);
    const running = c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting';
    // A container that is already down answers with its exit and the error that ended its start (moby's s.Err()).
    if (condition === 'not-running' && !running) {
      return Promise.resolve({ StatusCode: c.State.ExitCode, Error: c.State.Error ? { Message: c.State.Error } : null });
    }
    return new Promise((resolve) => {
      let set = this.waiters.get(c.Id);
      if (!set) this.waiters.set(c.Id, (set = new Set()));
      set.add({ condition, resolve });
    });
  }

  /** Cancels a wait whose client went away. */
  cancelWait(id: string, resolve: Waiter['resolve']): void {
    const set = this.waiters.get(id);
    if (!set) return;
    for (const w of set) if (w.resolve === resolve) set.delete(w);
  }

  /** `removed` passes the record, which is no longer in the map but still holds the exit code. */
  private notifyWaiters(id: string, event: 'exit' | 'removed', record?: ContainerRecord): void {
    const set = this.waiters.get(id);
    if (!set) return;
    const c = record ?? this.byId.get(id);
    const code = c?.State.ExitCode ?? 0;
    const willRemove = c?.HostConfig.AutoRemove ?? false;
    for (const w of [...set]) {
      if (w.condition === 'removed' && event !== 'removed') continue;
      // `not-running` on a container that restarts by policy still reports this exit (Docker).
      if (event === 'exit' && w.condition === 'removed' && willRemove) continue;
      set.delete(w);
      // dockerd answers a `removed` wait without the start's error (20.10, checked): `docker run
      // --rm` of a missing binary prints only the start's error, no "Error waiting for container".
      const err = event !== 'removed' && c?.State.Error ? { Message: c.State.Error } : null;
      w.resolve({ StatusCode: code, Error: err });
    }
    if (event === 'removed') {
      for (const w of set) w.resolve({ StatusCode: code, Error: null });
      this.waiters.delete(id);
    }
  }

  // ---- stop, kill, restart, pause ------------------------------------------------------------

  /**
   * Signals the container's init. Killing a pid namespace's init takes every process in it, so
   * this is `runc kill --all` for KILL, without paying for a runtime exec; the pid is checked to
   * still be in the container's cgroup first. Anything unusual falls back to the runtime.
   */
  private async signal(c: ContainerRecord, sig: string): Promise<void> {
    const pid = c.State.Pid;
    const num = /^\d+$/.test(sig) ? Number(sig) : SIGNALS[sig];
    this.d.events.container('kill', c, { signal: String(num ?? sig) });
    if (pid > 0 && num !== undefined) {
      try {
        if (readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(c.Id)) {
          process.kill(pid, num);
          return;
        }
      } catch {
        /* gone or not ours: ask the runtime */
      }
    }
    await this.runtime.kill(c.Id, sig, sig === 'KILL');
  }

  async stop(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const c = this.get(ref);
    const timer = this.restartTimers.get(c.Id);
    if (c.State.Status === 'restarting') {
      if (timer) clearTimeout(timer);
      this.restartTimers.delete(c.Id);
      const cancelled = await this.locked(c.Id, async () => {
        // The policy's start may have won the lock: then there is a process to stop below.
        if (c.State.Status !== 'restarting') return false;
        c.State.Status = 'exited';
        c.State.ManuallyStopped = true;
        this.save(c);
        return true;
      });
      if (cancelled) return;
    }
    if (c.State.Status !== 'running' && c.State.Status !== 'paused') throw new NotModified('container already stopped');
    c.State.ManuallyStopped = true;
    this.save(c);
    const sig = parseSignal(signal || c.Config.StopSignal || 'TERM');
    const timeout = timeoutSec ?? c.Config.StopTimeout ?? 10;
    if (c.State.Status === 'paused') await this.runtime.resume(c.Id).catch(() => {});
    if (timeout !== 0) {
      await this.signal(c, sig).catch((e: unknown) => log.debug('stop signal failed', { error: errorMessage(e) }));
      if (await this.waitExit(c.Id, timeout < 0 ? 2 ** 31 - 1 : timeout * 1000)) return this.d.events.container('stop', c);
    }
    await this.signal(c, 'KILL').catch(() => {});
    if (!(await this.waitExit(c.Id, 10_000))) throw new SystemError(`container ${c.Id} did not stop after SIGKILL`);
    this.d.events.container('stop', c);
  }

  async kill(ref: string, signal = 'KILL'): Promise<void> {
    const c = this.get(ref);
    const sig = parseSignal(signal);
    if (c.State.Status !== 'running' && c.State.Status !== 'paused') {
      throw new Conflict(`Cannot kill container: ${ref}: Container ${c.Id} is not running`);
    }
    if (sig === 'KILL' || sig === '9') {
      c.State.ManuallyStopped = true;
      this.save(c);
    }
    await this.signal(c, sig);
    if (sig === 'KILL' || sig === '9') {
      // A frozen process takes its SIGKILL only when thawed (runc thaws for KILL too).
      if (c.State.Status === 'paused') await this.runtime.resume(c.Id).catch(() => {});
      await this.waitExit(c.Id, 10_000);
    }
  }

  async restart(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const c = this.get(ref);
    if (c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting') {
      await this.stop(c.Id, timeoutSec, signal).catch((e: unknown) => {
        if (!(e instanceof NotModified)) throw e;
      });
    }
    await this.locked(c.Id, () => this.startLocked(c.Id, true));
    this.d.events.container('restart', c);
  }

  async pause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (c.State.Status === 'paused') throw new Conflict(`Container ${c.Id} is already paused`);
    if (c.State.Status !== 'running') throw new Conflict(`Container ${c.Id} is not running`);
    await this.locked(c.Id, async () => {
      await this.runtime.pause(c.Id);
      c.State.Status = 'paused';
      this.save(c);
      this.d.events.container('pause', c);
    });
  }

  async unpause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (c.State.Status !== 'paused') throw new Conflict(`Container ${c.Id} is not paused`);
    await this.locked(c.Id, async () => {
      await this.runtime.resume(c.Id);
      c.State.Status = 'running';
      this.save(c);
      this.d.events.container('unpause', c);
    });
  }

  /**
   * `docker update`: the limits and restart policy go into the record (inspect shows them, the next
   * start applies them) and, on a running or paused container, into its cgroup through the runtime.
   */
  async update(ref: string, body: Record<string, unknown>): Promise<{ Warnings: string[] }> {
    const c = this.get(ref);
    const req = parseUpdateRequest(body);
    return this.locked(c.Id, () => updateContainer(c, req, { runtime: this.runtime, save: (x) => this.save(x), events: this.d.events }));
  }

  // ---- remove, rename, prune -------------------------------------------------------------------

  async remove(ref: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    const c = this.get(ref);
    const st = c.State.Status;
    if (st === 'restarting' && !opts.force) {
      // moby daemon/delete.go's own words for this state.
      throw new Conflict(`You cannot remove a restarting container ${c.Id}. Stop the container before attempting removal or force remove`);
    }
    if ((st === 'running' || st === 'paused') && !opts.force) {
      throw new Conflict(
        `cannot remove container "/${c.Name}": container is ${st}: stop the container before removing or force remove`,
      );
    }
    const timer = this.restartTimers.get(c.Id);
    if (timer) clearTimeout(timer);
    this.restartTimers.delete(c.Id);
    if (st === 'running' || st === 'paused') {
      c.State.ManuallyStopped = true;
      this.save(c);
      if (st === 'paused') await this.runtime.resume(c.Id).catch(() => {});
      await this.signal(c, 'KILL').catch(() => {});
      if (!(await this.waitExit(c.Id, 10_000))) {
        throw new SystemError(`could not kill container ${c.Id}`);
      }
    }
    await this.locked(c.Id, async () => {
      if (!this.byId.has(c.Id)) return;
      c.State.Status = 'removing';
      this.save(c);
      const errors: unknown[] = [];
      await this.runtime.delete(c.Id, true).catch((e: unknown) => errors.push(e));
      if (!c.HostConfig.NetworkMode.startsWith('container:') && c.HostConfig.NetworkMode !== 'host') {
        await this.netns.delete(this.netnsName(c)).catch((e: unknown) => errors.push(e));
      }
      const rootfs = join(this.dir(c.Id), 'rootfs');
      if (isMounted(rootfs)) await umount(rootfs).catch((e: unknown) => errors.push(e));
      try {
        rmSync(this.dir(c.Id), { recursive: true, force: true });
        rmSync(join(this.runtime.socketDir, c.Id), { force: true });
      } catch (e) {
        errors.push(e);
      }
      if (errors.length) {
        c.State.Status = 'dead';
        this.save(c);
        throw new SystemError(`removal of container ${c.Id} is incomplete: ${errors.map(errorMessage).join('; ')}`);
      }
      this.logRotator.unwatch(c.Id);
      this.d.store.db.prepare('DELETE FROM containers WHERE id = ?').run(c.Id);
      this.byId.delete(c.Id);
      this.d.execs.forget(c.Id);
      this.d.events.container('destroy', c);
      if (opts.volumes) {
        for (const m of c.Mounts) {
          if (m.Type === 'volume' && m.Anonymous && m.Name) {
            try {
              this.d.volumes.remove(m.Name, true);
            } catch (e) {
              log.debug('anonymous volume not removed', { name: m.Name, error: errorMessage(e) });
            }
          }
        }
      }
    });
    this.notifyWaiters(c.Id, 'removed', c);
    log.debug('removed', { id: c.Id.slice(0, 12) });
  }

  /** `docker rm --link /linker/alias` (`DELETE /containers/{name}?link=1`): drops that link. */
  async removeLink(ref: string): Promise<void> {
    const { parent, links } = withoutLink(ref, (r) => this.find(r));
    parent.HostConfig.Links = links.length ? links : null;
    this.save(parent);
    await this.attacher.linksChanged?.(parent);
  }

  async rename(ref: string, newName: string): Promise<void> {
    const c = this.get(ref);
    if (!newName) throw new InvalidParameter('Neither old nor new names may be empty');
    const name = validateName(newName);
    if (name === c.Name) throw new InvalidParameter(`Renaming a container with the same name as its current name`);
    const oldName = c.Name;
    this.d.store.tx(() => {
      try {
        this.assertNameFree(name);
      } catch (e) {
        // moby wraps the name conflict of a rename; compose's recreate looks for these words.
        if (e instanceof Conflict) throw new Conflict(`Error when allocating new name: ${e.message}`);
        throw e;
      }
      c.Name = name;
      this.save(c);
      this.d.events.container('rename', c, { oldName: `/${oldName}` });
    });
    // Docker answers once the sandbox's names are renamed: DNS and policies see the new name.
    await this.attacher.renamed?.(c, oldName);
  }

  async prune(filter: (c: ContainerRecord) => boolean): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of this.all()) {
      if (c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting') continue;
      if (!filter(c)) continue;
      // What moby counts: the container's own layer (`docker ps -s` SizeRw), measured before it goes.
      const size = containerSize(this.dir(c.Id), 0).SizeRw ?? 0;
      await this.remove(c.Id, { force: false, volumes: false });
      deleted.push(c.Id);
      reclaimed += size;
    }
    this.d.events.emit('container', 'prune', '', { reclaimed: String(reclaimed) });
    return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /** `docker top`: `ps` output on the host, limited to the container's processes. */
  async top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const c = this.get(ref);
    if (c.State.Status !== 'running' && c.State.Status !== 'paused') throw new Conflict(`Container ${c.Id} is not running`);
    const pids = new Set(await this.runtime.pids(c.Id));
    const args = psArgs ? psArgs.split(/\s+/).filter(Boolean) : ['-ef'];
    const res = await run(['ps', ...args]).catch((e: unknown) => {
      throw new InvalidParameter(`Error running ps: ${errorMessage(e)}`);
    });
    const lines = res.stdout.split('\n').filter(Boolean);
    const titles = lines[0]!.trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    if (pidCol < 0) throw new InvalidParameter(`Couldn't find PID field in ps output`);
    const processes: string[][] = [];
    for (const line of lines.slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (!pids.has(Number(fields[pidCol]))) continue;
      const head = fields.slice(0, titles.length - 1);
      head.push(fields.slice(titles.length - 1).join(' '));
      processes.push(head);
    }
    return { Titles: titles, Processes: processes };
  }

  /** Writes a resize request to conmon's control fifo. */
  resize(ref: string, h: number, w: number): void {
    const c = this.get(ref);
    if (c.State.Status !== 'running') throw new Conflict(`Container ${c.Id} is not running`);
    writeCtl(join(this.dir(c.Id), 'ctl'), h, w);
    this.d.events.container('resize', c, { height: String(h), width: String(w) });
  }

  /** json-file `max-size`: rotation of a running container's log. */
  private watchLog(c: ContainerRecord): void {
    const limits = logLimits(c.HostConfig.LogConfig);
    if (limits) this.logRotator.watch(c.Id, this.logPath(c.Id), join(this.dir(c.Id), 'ctl'), limits);
  }

  /** conmon's attach socket folder for this container (relative name `attach` inside it). */
  attachDir(id: string): string {
    return this.dir(id);
  }

  async shutdown(): Promise<void> {
    this.watcher?.close();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.logRotator.close();
    await this.netns.close();
  }
}

/** Writes `1 <h> <w>` (resize) to a conmon ctl fifo without blocking if conmon is gone. */
export function writeCtl(path: string, h: number, w: number): void {
  if (!Number.isFinite(h) || !Number.isFinite(w) || h < 0 || w < 0) throw new InvalidParameter('invalid terminal size');
  let fd: number | undefined;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_NONBLOCK);
    writeSync(fd, `1 ${h} ${w}\n`);
  } catch (e) {
    log.debug('resize failed', { error: errorMessage(e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function osHostname(): string {
  try {
    return readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
  } catch {
    return 'localhost';
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readPidFile(path: string): number {
  try {
    return Number(readFileSync(path, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function isMounted(path: string): boolean {
  try {
    const text = readFileSync('/proc/self/mountinfo', 'utf8');
    return text.split('\n').some((l) => l.split(' ')[4] === path);
  } catch {
    return false;
  }
}

/** mount(2) through the native addon when it loads (no exec), else mount(8). */
export async function mountOverlay(options: string, target: string): Promise<void> {
  const n = native();
  if (n) await n.mount('overlay', target, 'overlay', 0, options);
  else await run(['mount', '-t', 'overlay', 'overlay', '-o', options, target]);
}

export async function umount(path: string): Promise<void> {
  if (!isMounted(path)) return;
  const n = native();
  if (n) await n.umount(path, 0).catch(async () => n.umount(path, MNT_DETACH));
  else await run(['umount', path]).catch(async () => run(['umount', '-l', path]));
}

export type { ContainerState };
