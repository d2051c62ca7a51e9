import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyChanges, shellWords } from '../../src/images/change-parser.js';

describe('--change instructions', () => {
  it('parses CMD and ENTRYPOINT in JSON and shell form', () => {
    assert.deepEqual(applyChanges({}, ['CMD ["a", "b"]']).Cmd, ['a', 'b']);
    assert.deepEqual(applyChanges({}, ['CMD echo $HOME']).Cmd, ['/bin/sh', '-c', 'echo $HOME']);
    assert.deepEqual(applyChanges({}, ['CMD [not json']).Cmd, ['/bin/sh', '-c', '[not json']);
    const c = applyChanges({ Cmd: ['old'] }, ['ENTRYPOINT ["/init"]']);
    assert.deepEqual(c.Entrypoint, ['/init']);
    assert.equal(c.Cmd, null, 'an ENTRYPOINT resets an inherited CMD');
    const both = applyChanges({}, ['CMD ["x"]', 'ENTRYPOINT /bin/run']);
    assert.deepEqual(both.Cmd, ['x']);
    assert.deepEqual(both.Entrypoint, ['/bin/sh', '-c', '/bin/run']);
  });

  it('parses ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL', () => {
    const c = applyChanges({ Env: ['A=0', 'HOME=/root'] }, [
      'ENV A=1 B="two words" C=${HOME}/x',
      'ENV LEGACY value with spaces',
      "LABEL a=b 'c d'=e",
      'EXPOSE 80 53/udp 8000-8001',
      'USER 1000:1000',
      'WORKDIR /srv',
      'WORKDIR app',
      'VOLUME ["/data", "/logs"]',
      'VOLUME /cache',
      'STOPSIGNAL SIGINT',
    ]);
    assert.deepEqual(c.Env, ['A=1', 'HOME=/root', 'B=two words', 'C=/root/x', 'LEGACY=value with spaces']);
    assert.deepEqual(c.Labels, { a: 'b', 'c d': 'e' });
    assert.deepEqual(Object.keys(c.ExposedPorts!), ['80/tcp', '53/udp', '8000/tcp', '8001/tcp']);
    assert.equal(c.User, '1000:1000');
    assert.equal(c.WorkingDir, '/srv/app');
    assert.deepEqual(Object.keys(c.Volumes!), ['/data', '/logs', '/cache']);
    assert.equal(c.StopSignal, 'SIGINT');
  });

  it('joins continuation lines and skips comments', () => {
    const c = applyChanges({}, ['# comment\nENV A=1 \\\n  B=2']);
    assert.deepEqual(c.Env, ['A=1', 'B=2']);
  });

  it('parses HEALTHCHECK and ONBUILD', () => {
    const c = applyChanges({}, ['HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/', 'ONBUILD run echo hi']);
    assert.deepEqual(c.Healthcheck, { Interval: 5e9, Retries: 3, Test: ['CMD-SHELL', 'curl -f http://x/'] });
    assert.deepEqual(c.OnBuild, ['RUN echo hi']);
    assert.deepEqual(applyChanges({}, ['HEALTHCHECK NONE']).Healthcheck, { Test: ['NONE'] });
  });

  it('rejects what Docker rejects', () => {
    assert.throws(() => applyChanges({}, ['FROM busybox']), /^InvalidParameter: from is not a valid change command$/);
    assert.throws(() => applyChanges({}, ['RUN true']), /run is not a valid change command/);
    assert.throws(() => applyChanges({}, ['BOGUS x']), /bogus is not a valid change command/);
    assert.throws(() => applyChanges({}, ['EXPOSE abc']), /invalid containerPort: abc/);
    assert.throws(() => applyChanges({}, ['STOPSIGNAL SIGNOPE']), /Invalid signal: SIGNOPE/);
    assert.throws(() => applyChanges({}, ['ENV']), /ENV requires at least one argument/);
    assert.throws(() => applyChanges({}, ['ONBUILD ONBUILD RUN x']), /Chaining ONBUILD/);
  });

  it('splits words with quotes, escapes and expansion', () => {
    assert.deepEqual(shellWords(`a "b c" 'd $X' e\\ f $X \${Y:-def} \${X:+alt}`, ['X=1']), ['a', 'b c', 'd $X', 'e f', '1', 'def', 'alt']);
  });
});
