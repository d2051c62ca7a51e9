import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { expandArgs, parseDockerfile, summarizeDockerfile } from '../../src/build/dockerfile-frontend.js';
import { BuildOutput } from '../../src/build/build-output.js';
import { ProgressStream } from '../../src/images/progress-stream.js';

describe('dockerfile frontend', () => {
  it('joins continuation lines, skips comments, honours the escape directive', () => {
    const ins = parseDockerfile('# escape=`\nFROM busybox\n# a comment\nRUN echo a `\n  # inside\n  && echo b\nrun true\n');
    assert.deepEqual(
      ins.map((i) => [i.keyword, i.args, i.line]),
      [
        ['FROM', 'busybox', 2],
        ['RUN', 'echo a && echo b', 4],
        ['RUN', 'true', 7],
      ],
    );
  });

  it("answers an unknown instruction with BuildKit's parser message", () => {
    assert.throws(() => parseDockerfile('FROM a\n\nFROBNICATE x\n'), /^InvalidParameter: dockerfile parse error on line 3: unknown instruction: FROBNICATE$|dockerfile parse error on line 3: unknown instruction: FROBNICATE/);
  });

  it('expands build args in FROM and finds the images stages start from and copy from', () => {
    const s = summarizeDockerfile(
      [
        'ARG BASE=busybox:1',
        'ARG TAG',
        'FROM ${BASE} AS build',
        'RUN make',
        'FROM scratch',
        'COPY --from=build /out /out',
        'COPY --from=0 /x /x',
        'COPY --from=alpine:${TAG:-3} /etc/os-release /',
        'FROM --platform=linux/amd64 build AS again',
        '',
      ].join('\n'),
      { BASE: 'debian:12' },
    );
    assert.deepEqual(s.images, ['debian:12', 'alpine:${TAG:-3}']);
    assert.deepEqual(
      s.stages.map((x) => [x.base, x.name]),
      [
        ['debian:12', 'build'],
        ['scratch', undefined],
        ['build', 'again'],
      ],
    );
  });

  it('stops at --target and says so when the target is missing', () => {
    const text = 'FROM a AS one\nRUN x\nFROM b AS two\nRUN y\n';
    const s = summarizeDockerfile(text, {}, 'one');
    assert.deepEqual(s.images, ['a']);
    assert.equal(s.steps, 2);
    assert.throws(() => summarizeDockerfile(text, {}, 'three'), /failed to reach build target three in Dockerfile/);
  });

  it('rejects empty files and instructions before FROM', () => {
    assert.throws(() => summarizeDockerfile('# nothing\n', {}), /cannot be empty/);
    assert.throws(() => summarizeDockerfile('RUN x\nFROM a\n', {}), /no build stage in current context/);
  });

  it('expands $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt}', () => {
    const v = new Map([['A', '1']]);
    assert.equal(expandArgs('$A-${A}-${B:-d}-${A:+alt}-${B:+alt}', v), '1-1-d-alt-');
  });
});

describe('build output', () => {
  const collect = (): { out: ProgressStream; lines: unknown[] } => {
    const lines: unknown[] = [];
    const res = { writeHead: () => res, write: (t: string) => lines.push(JSON.parse(t)) };
    return { out: new ProgressStream(res as unknown as ServerResponse), lines };
  };

  it("passes a step's stdout as is and wraps its stderr in red, as Docker's classic builder", () => {
    const { out, lines } = collect();
    const b = new BuildOutput(out, false, 2, new Map([['busybox', '7ed05d9bef2f']]));
    b.line('STEP 1/2: FROM busybox');
    b.line('STEP 2/2: RUN echo out1 && echo err1 >&2');
    b.line('out1');
    b.line('err1', 'stderr');
    b.line('time="2026-01-01T00:00:00Z" level=warning msg="x"', 'stderr');
    assert.deepEqual(lines, [
      { stream: 'Step 1/2 : FROM busybox\n' },
      { stream: ' ---> 7ed05d9bef2f\n' },
      { stream: 'Step 2/2 : RUN echo out1 && echo err1 >&2\n' },
      { stream: 'out1\n' },
      { stream: '\u001b[91merr1\n\u001b[0m' },
    ]);
  });

  it('does not repeat a first step the builder already announced, but still gives its base id', () => {
    const { out, lines } = collect();
    const b = new BuildOutput(out, false, 2, new Map([['busybox', '7ed05d9bef2f']]), true);
    b.line('STEP 1/2: FROM busybox');
    b.line('STEP 2/2: RUN true');
    assert.deepEqual(lines, [{ stream: ' ---> 7ed05d9bef2f\n' }, { stream: 'Step 2/2 : RUN true\n' }]);
  });

  it("gives each step's image id; buildah's hidden LABEL step's image is the last step's", () => {
    const { out, lines } = collect();
    const b = new BuildOutput(out, false, 3, new Map([['busybox', '7ed05d9bef2f']]), true);
    const a = 'a'.repeat(64);
    const c = 'c'.repeat(64);
    for (const l of ['STEP 1/4: FROM busybox', 'STEP 2/4: RUN true', `--> ${a}`, 'STEP 3/4: ENV X=1', `--> Using cache ${'b'.repeat(64)}`, `--> ${'b'.repeat(11)}`, 'STEP 4/4: LABEL "k"="v"', 'COMMIT', `--> Using cache ${c}`, `--> ${'c'.repeat(11)}`]) b.line(l);
    b.finish();
    assert.deepEqual(
      lines.map((x) => (x as { stream: string }).stream),
      [' ---> 7ed05d9bef2f\n', 'Step 2/3 : RUN true\n', ` ---> ${'a'.repeat(12)}\n`, 'Step 3/3 : ENV X=1\n', ' ---> Using cache\n', ` ---> ${'c'.repeat(12)}\n`],
    );
  });
});
