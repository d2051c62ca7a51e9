import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { expandArgs, parseDockerfile, summarizeDockerfile } from '../../src/build/dockerfile-frontend.js';

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
