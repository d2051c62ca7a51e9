import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter } from '../../src/errors.js';
import {
  familiarMatch,
  familiarString,
  parseNormalizedNamed,
  referenceString,
  tagReference,
  withDefaultTag,
} from '../../src/images/reference.js';

const norm = (s: string): string => referenceString(withDefaultTag(parseNormalizedNamed(s)));

describe('image references', () => {
  it('normalises familiar names like Docker', () => {
    assert.equal(norm('busybox'), 'docker.io/library/busybox:latest');
    assert.equal(norm('busybox:1.36'), 'docker.io/library/busybox:1.36');
    assert.equal(norm('user/app'), 'docker.io/user/app:latest');
    assert.equal(norm('docker.io/busybox'), 'docker.io/library/busybox:latest');
    assert.equal(norm('index.docker.io/library/busybox:x'), 'docker.io/library/busybox:x');
    assert.equal(norm('localhost/a'), 'localhost/a:latest');
    assert.equal(norm('localhost:5000/a/b/c:t'), 'localhost:5000/a/b/c:t');
    assert.equal(norm('127.0.0.1:5000/x'), '127.0.0.1:5000/x:latest');
    assert.equal(norm('[::1]:5000/x:y'), '[::1]:5000/x:y');
    const d = 'sha256:' + 'a'.repeat(64);
    assert.equal(norm(`busybox@${d}`), `docker.io/library/busybox@${d}`);
  });

  it('prints familiar strings', () => {
    assert.equal(familiarString(parseNormalizedNamed('docker.io/library/busybox:1')), 'busybox:1');
    assert.equal(familiarString(parseNormalizedNamed('docker.io/user/app:1')), 'user/app:1');
    assert.equal(familiarString(parseNormalizedNamed('docker.io/library/a/b:1')), 'library/a/b:1');
    assert.equal(familiarString(parseNormalizedNamed('127.0.0.1:5000/x:1')), '127.0.0.1:5000/x:1');
  });

  it('rejects bad references with Docker’s messages', () => {
    const err = (s: string): string => {
      try {
        parseNormalizedNamed(s);
      } catch (e) {
        assert.ok(e instanceof InvalidParameter);
        return e.message;
      }
      return 'no error';
    };
    assert.equal(err('a:b:c'), 'invalid reference format');
    assert.equal(err('UPPER'), 'invalid reference format: repository name (library/UPPER) must be lowercase');
    assert.equal(err('x/Upper:1'), 'invalid reference format: repository name (x/Upper) must be lowercase');
    assert.equal(err('a'.repeat(64)), `invalid repository name (${'a'.repeat(64)}), cannot specify 64-byte hexadecimal strings`);
    assert.equal(err('busybox:'), 'invalid reference format');
    assert.equal(err('-x'), 'invalid reference format');
    assert.equal(err('x@sha256:abc'), 'invalid reference format');
    assert.equal(err(`x@sha256:${'a'.repeat(63)}A`), 'invalid checksum digest format');
    assert.equal(err(''), 'invalid reference format');
    // An uppercase first component is a registry host, as in distribution/reference.
    assert.equal(err('UPPER/x'), 'no error');
  });

  it('matches reference filters like FamiliarMatch', () => {
    const r = parseNormalizedNamed('docker.io/library/busybox:latest');
    assert.ok(familiarMatch('busybox', r));
    assert.ok(familiarMatch('busy*', r));
    assert.ok(familiarMatch('busybox:lat*', r));
    assert.ok(!familiarMatch('*/busybox', r));
    assert.ok(!familiarMatch('alpine', r));
    const h = parseNormalizedNamed('127.0.0.1:5000/a/b:1');
    assert.ok(familiarMatch('127.0.0.1:5000/a/*', h));
    assert.ok(!familiarMatch('127.0.0.1:5000/*', h));
  });

  it('makes the reference of a new tag (tag, import, commit)', () => {
    assert.equal(referenceString(tagReference('me/app')), 'docker.io/me/app:latest');
    assert.equal(referenceString(tagReference('localhost:5000/app:v1')), 'localhost:5000/app:v1');
    assert.equal(referenceString(tagReference('app:v1', 'v2')), 'docker.io/library/app:v2', 'the tag parameter wins');
    assert.throws(() => tagReference('app@sha256:' + 'a'.repeat(64)), /refusing to create a tag with a digest reference/);
    assert.throws(() => tagReference('app', 'bad tag'), /invalid tag format/);
  });
});
