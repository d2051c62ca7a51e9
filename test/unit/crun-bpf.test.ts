import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_DATA_ANNOTATION, CrunSeccompBpf, precompilable, toolchainStamp } from '../../src/runtime/seccomp/crun-bpf.js';
import type { LinuxSeccomp } from '../../src/runtime/seccomp/render.js';

const SECTION: LinuxSeccomp = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
  syscalls: [{ names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' }],
};
const spec = (seccomp: LinuxSeccomp = SECTION, annotations?: Record<string, string>): Record<string, unknown> => ({
  ...(annotations ? { annotations } : {}),
  linux: { seccomp },
});
/** Two BPF instructions (8 bytes each): `ret ALLOW`, twice. */
const PROGRAM = Buffer.from('060000000000ff7f060000000000ff7f', 'hex');

describe('crun precompiled seccomp filters', () => {
  it('only a section crun compiles the same whatever else the spec says is precompiled', () => {
    assert.equal(precompilable(spec()), SECTION);
    assert.equal(precompilable({ linux: {} }), undefined);
    assert.equal(precompilable(spec(SECTION, { [BPF_DATA_ANNOTATION]: 'AAAA' })), undefined, 'a filter the client chose stays');
    assert.equal(precompilable(spec(SECTION, { 'run.oci.seccomp_fail_unknown_syscall': '1' })), undefined);
    assert.equal(precompilable(spec({ ...SECTION, listenerPath: '/run/l.sock' })), undefined);
    assert.equal(precompilable(spec({ ...SECTION, syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }] })), undefined);
    assert.equal(precompilable(spec(SECTION, { other: 'x' })), SECTION);
  });

  it('the first container is left to crun and starts the compile; later ones get the program', async () => {
    const seen: LinuxSeccomp[] = [];
    const c = new CrunSeccompBpf(async (s) => (seen.push(s), PROGRAM));
    const first = spec();
    assert.equal(c.annotate(first), false);
    assert.equal(first['annotations'], undefined);
    assert.equal(c.annotate(spec()), false, 'one compile at a time per section');
    await c.settled();
    assert.equal(seen.length, 1);
    const later = spec(SECTION, { keep: 'me' });
    assert.equal(c.annotate(later), true);
    assert.deepEqual(later['annotations'], { keep: 'me', [BPF_DATA_ANNOTATION]: PROGRAM.toString('base64') });
    // The same rules in another object are the same section; other rules are another one.
    assert.equal(c.annotate(spec(structuredClone(SECTION))), true);
    assert.equal(c.annotate(spec({ ...SECTION, defaultErrnoRet: 1 })), false, 'errno values are part of the key');
    await c.settled();
    assert.equal(seen.length, 2);
  });

  it('a failed or malformed compile leaves containers to crun, and is not retried', async () => {
    let calls = 0;
    for (const compile of [async () => (calls++, Promise.reject(new Error('crun: boom'))), async () => (calls++, Buffer.alloc(12))]) {
      const c = new CrunSeccompBpf(compile);
      c.annotate(spec());
      await c.settled();
      const s = spec();
      assert.equal(c.annotate(s), false);
      assert.equal(s['annotations'], undefined);
      await c.settled();
    }
    assert.equal(calls, 2);
  });

  it('a new crun or libseccomp means a new compile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-bpf-'));
    try {
      const bin = join(dir, 'crun');
      writeFileSync(bin, 'v1');
      let n = 0;
      const c = new CrunSeccompBpf(async () => (n++, PROGRAM), () => toolchainStamp([bin, join(dir, 'missing.so')]));
      c.annotate(spec());
      await c.settled();
      assert.equal(c.annotate(spec()), true);
      writeFileSync(bin, 'v2 longer');
      utimesSync(bin, new Date(), new Date(Date.now() + 5000));
      assert.equal(c.annotate(spec()), false);
      await c.settled();
      assert.equal(c.annotate(spec()), true);
      assert.equal(n, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a bounded number of sections', async () => {
    const c = new CrunSeccompBpf(async () => PROGRAM, () => '', 2);
    const sections = [1, 2, 3].map((e) => ({ ...SECTION, defaultErrnoRet: e }));
    for (const s of sections) c.annotate(spec(s));
    await c.settled();
    assert.deepEqual(sections.map((s) => c.annotate(spec(s))), [false, true, true]);
  });
});
