import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { logger } from '../../log.js';
import { run } from '../../sys/runner.js';
import type { LinuxSeccomp } from './render.js';

const log = logger('arca:seccomp');

/**
 * crun's annotation for a filter compiled beforehand (crun(1), "run.oci.seccomp_bpf_data"): the
 * base64 of what it hands to seccomp(SECCOMP_SET_MODE_FILTER), used instead of compiling
 * `linux.seccomp`. Flags and the notify listener still come from that section.
 */
export const BPF_DATA_ANNOTATION = 'run.oci.seccomp_bpf_data';
/** Changes how crun compiles (an unknown name fails the start): such specs compile as they are. */
const FAIL_UNKNOWN_ANNOTATION = 'run.oci.seccomp_fail_unknown_syscall';

/** A spec as the daemon writes it: the parts this file reads or adds. */
interface SpecLike {
  annotations?: Record<string, string>;
  linux?: { seccomp?: LinuxSeccomp };
}

/**
 * Whether a container's filter may be the one compiled beforehand: a section that crun compiles
 * the same way whatever the rest of the spec says. A notify listener (`SCMP_ACT_NOTIFY`,
 * `listenerPath`) and annotations that steer crun's compiler are left to crun.
 */
export function precompilable(spec: SpecLike): LinuxSeccomp | undefined {
  const s = spec.linux?.seccomp;
  if (!s) return undefined;
  const a = spec.annotations ?? {};
  if (BPF_DATA_ANNOTATION in a || FAIL_UNKNOWN_ANNOTATION in a) return undefined;
  if (s.listenerPath || s.defaultAction === 'SCMP_ACT_NOTIFY' || s.syscalls.some((r) => r.action === 'SCMP_ACT_NOTIFY')) return undefined;
  return s;
}

/**
 * What a compiled filter depends on besides its section: the crun binary and the libseccomp it
 * loads (the kernel cannot change under a running daemon). An upgrade of either makes a new key,
 * so a filter is never one that the installed crun would not compile itself.
 */
export function toolchainStamp(files: readonly string[]): string {
  return files
    .map((f) => {
      const st = statSync(f, { throwIfNoEntry: false });
      return st ? `${f}:${st.ino}:${st.size}:${st.mtimeMs}` : `${f}:-`;
    })
    .join('|');
}

/** Compiles a section to its BPF program, the bytes crun would load. */
export type BpfCompiler = (section: LinuxSeccomp) => Promise<Buffer>;

/**
 * crun compiles a container's seccomp profile with libseccomp at every start (some 7 ms of CPU
 * for the default profile with its 32-bit x86 sub-architecture, more than half of what a start
 * costs crun). The program only depends on the section, crun and libseccomp, so it is compiled
 * once per distinct section — by crun itself, see {@link crunCompiler} — and handed to later
 * containers through crun's annotation. A section not compiled yet starts its compile in the
 * background and that container is left to crun: no start ever waits for it.
 */
export class CrunSeccompBpf {
  private readonly done = new Map<string, string | null>();
  private readonly pending = new Set<string>();

  constructor(
    private readonly compile: BpfCompiler,
    private readonly stamp: () => string = () => '',
    private readonly maxEntries = 32,
  ) {}

  /** Adds the annotation to a spec whose filter is compiled; starts the compile otherwise. */
  annotate(spec: SpecLike): boolean {
    const section = precompilable(spec);
    if (!section) return false;
    const key = `${this.stamp()}\n${JSON.stringify(section)}`;
    const bpf = this.done.get(key);
    if (bpf) {
      spec.annotations = { ...spec.annotations, [BPF_DATA_ANNOTATION]: bpf };
      return true;
    }
    if (bpf === undefined && !this.pending.has(key)) void this.fill(key, section);
    return false;
  }

  /** Resolves once no compile is running (tests, and a daemon that wants its cache warm). */
  async settled(): Promise<void> {
    while (this.pending.size) await new Promise((r) => setTimeout(r, 5));
  }

  private async fill(key: string, section: LinuxSeccomp): Promise<void> {
    this.pending.add(key);
    try {
      const bpf = await this.compile(section);
      // A BPF program is a whole number of 8-byte instructions; anything else is not one.
      if (bpf.length === 0 || bpf.length % 8 !== 0) throw new Error(`unexpected program size ${bpf.length}`);
      this.remember(key, bpf.toString('base64'));
    } catch (e) {
      // Remembered as failed: containers keep being compiled by crun, as without this cache.
      log.warn('seccomp filter not precompiled: crun compiles it at each start', { error: errorMessage(e) });
      this.remember(key, null);
    } finally {
      this.pending.delete(key);
    }
  }

  private remember(key: string, v: string | null): void {
    if (this.done.size >= this.maxEntries) this.done.delete(this.done.keys().next().value!);
    this.done.set(key, v);
  }
}

/**
 * Has crun compile a section: `crun create` of a throwaway container whose spec is only that
 * section, then the program crun wrote to its state (`<root>/<id>/seccomp.bpf`, kept until start),
 * then `crun delete --force`. The container never starts: its executable is an empty file.
 */
export function crunCompiler(runtimeBin: string, workDir: string): BpfCompiler {
  let swept = false;
  return async (section) => {
    const root = join(workDir, 'state');
    const bundle = join(workDir, 'bundle');
    mkdirSync(root, { recursive: true });
    if (!swept) {
      // A compile cut short by a daemon crash leaves a created container behind.
      swept = true;
      for (const id of readdirSync(root)) await run([runtimeBin, `--root=${root}`, 'delete', '--force', id], { allowFailure: true });
    }
    mkdirSync(join(bundle, 'rootfs', 'dev'), { recursive: true });
    writeFileSync(join(bundle, 'rootfs', 'never-run'), '');
    chmodSync(join(bundle, 'rootfs', 'never-run'), 0o755);
    const id = `bpf-${randomBytes(6).toString('hex')}`;
    const spec = {
      ociVersion: '1.0.2',
      process: { args: ['/never-run'], cwd: '/', user: { uid: 0, gid: 0 } },
      root: { path: 'rootfs', readonly: true },
      mounts: [],
      linux: { namespaces: [{ type: 'mount' }], cgroupsPath: `/arca/${id}`, seccomp: section },
    };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    try {
      await run([runtimeBin, `--root=${root}`, 'create', '--bundle', bundle, id], { timeoutMs: 30_000, untilExit: true });
      return readFileSync(join(root, id, 'seccomp.bpf'));
    } finally {
      await run([runtimeBin, `--root=${root}`, 'delete', '--force', id], { allowFailure: true, timeoutMs: 30_000 });
      rmSync(join(root, id), { recursive: true, force: true });
    }
  };
}
