import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  listPredicate,
  matchLabels,
  matchPattern,
  parseBoolFilter,
  prunePredicate,
  type FilterableVolume,
} from '../../src/volumes/volume-filter.js';
import { InvalidParameter } from '../../src/errors.js';

const ANON = 'com.docker.volume.anonymous';
const vols: FilterableVolume[] = [
  { Name: 'web-data', Driver: 'local', Labels: { app: 'web', tier: 'front' }, inUse: true },
  { Name: 'db', Driver: 'local', Labels: { app: 'db' }, inUse: false },
  { Name: 'plain', Driver: 'local', Labels: null, inUse: false },
  { Name: 'a'.repeat(64), Driver: 'local', Labels: { [ANON]: '' }, inUse: false },
  { Name: 'b'.repeat(64), Driver: 'local', Labels: { [ANON]: '', app: 'web' }, inUse: true },
];

const f = (o: Record<string, string[]>): Map<string, string[]> => new Map(Object.entries(o));
const names = (pred: (v: FilterableVolume) => boolean): string[] => vols.filter(pred).map((v) => v.Name.slice(0, 8));

describe('volume list filters', () => {
  it('no filter keeps everything', () => {
    assert.equal(vols.filter(listPredicate(f({}))).length, vols.length);
  });

  it('name matches exactly or as an unanchored regular expression', () => {
    assert.deepEqual(names(listPredicate(f({ name: ['db'] }))), ['db']);
    assert.deepEqual(names(listPredicate(f({ name: ['data'] }))), ['web-data']);
    assert.deepEqual(names(listPredicate(f({ name: ['^pl', '^db$'] }))), ['db', 'plain']);
    // A term that is not a valid expression only matches itself.
    assert.deepEqual(names(listPredicate(f({ name: ['(' ] }))), []);
  });

  it('label terms must all match; key alone or key=value', () => {
    assert.deepEqual(names(listPredicate(f({ label: ['app'] }))), ['web-data', 'db', 'bbbbbbbb']);
    assert.deepEqual(names(listPredicate(f({ label: ['app=web'] }))), ['web-data', 'bbbbbbbb']);
    assert.deepEqual(names(listPredicate(f({ label: ['app=web', 'tier=front'] }))), ['web-data']);
    assert.deepEqual(names(listPredicate(f({ label: ['app='] }))), []);
  });

  it('dangling selects unused (true/1) or used (false/0) volumes', () => {
    assert.deepEqual(names(listPredicate(f({ dangling: ['true'] }))), ['db', 'plain', 'aaaaaaaa']);
    assert.deepEqual(names(listPredicate(f({ dangling: ['0'] }))), ['web-data', 'bbbbbbbb']);
    assert.throws(() => listPredicate(f({ dangling: ['maybe'] })), { message: "invalid filter 'dangling=maybe'" });
    assert.throws(() => listPredicate(f({ dangling: ['true', 'false'] })), InvalidParameter);
  });

  it('driver compares names exactly', () => {
    assert.equal(vols.filter(listPredicate(f({ driver: ['local'] }))).length, vols.length);
    assert.equal(vols.filter(listPredicate(f({ driver: ['loc'] }))).length, 0);
  });

  it('unknown keys are refused as Docker refuses them', () => {
    assert.throws(() => listPredicate(f({ until: ['1h'] })), { message: "invalid filter 'until'" });
    assert.throws(() => listPredicate(f({ 'label!': ['x'] })), { message: "invalid filter 'label!'" });
  });

  it('helpers: matchLabels, matchPattern, parseBoolFilter', () => {
    assert.equal(matchLabels([], null), true);
    assert.equal(matchLabels(['a'], {}), false);
    assert.equal(matchLabels(['a=b=c'], { a: 'b=c' }), true);
    assert.equal(matchPattern(['x.y'], 'xzy'), true);
    assert.equal(parseBoolFilter(f({}), 'dangling'), undefined);
    assert.equal(parseBoolFilter(f({ dangling: ['TRUE'] }), 'dangling'), true);
  });
});

describe('volume prune filters', () => {
  it('prunes only unused anonymous volumes by default (API >= 1.42)', () => {
    assert.deepEqual(names(prunePredicate(f({}), ANON)), ['aaaaaaaa']);
  });

  it('all=true, or an old API version, takes every unused volume', () => {
    assert.deepEqual(names(prunePredicate(f({ all: ['true'] }), ANON)), ['db', 'plain', 'aaaaaaaa']);
    assert.deepEqual(names(prunePredicate(f({}), ANON, true)), ['db', 'plain', 'aaaaaaaa']);
    assert.deepEqual(names(prunePredicate(f({ all: ['0'] }), ANON, true)), ['aaaaaaaa']);
  });

  it('label and label! narrow the choice', () => {
    assert.deepEqual(names(prunePredicate(f({ all: ['1'], label: ['app'] }), ANON)), ['db']);
    assert.deepEqual(names(prunePredicate(f({ all: ['1'], 'label!': ['app=db'] }), ANON)), ['plain', 'aaaaaaaa']);
  });

  it('refuses bad all values and unknown keys with Docker messages', () => {
    assert.throws(() => prunePredicate(f({ all: ['x'] }), ANON), {
      message: `invalid filter 'all': strconv.ParseBool: parsing "x": invalid syntax`,
    });
    assert.throws(() => prunePredicate(f({ all: ['1', '0'] }), ANON), {
      message: "invalid filter 'all=[1 0]': only one value is expected",
    });
    assert.throws(() => prunePredicate(f({ dangling: ['true'] }), ANON), { message: "invalid filter 'dangling'" });
  });
});
