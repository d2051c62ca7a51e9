import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_API_VERSION,
  MIN_API_VERSION,
  Router,
  compareVersions,
  parseFilters,
  qbool,
  splitVersion,
} from '../../src/api/router.js';
import { InvalidParameter, toHttpStatus } from '../../src/errors.js';

const q = (s: string): URLSearchParams => new URLSearchParams(s);

describe('compareVersions', () => {
  it('compares major, then minor, numerically', () => {
    assert.ok(compareVersions('1.9', '1.10') < 0);
    assert.ok(compareVersions('1.51', '1.24') > 0);
    assert.equal(compareVersions('1.44', '1.44'), 0);
    assert.ok(compareVersions('2.0', '1.99') > 0);
  });
});

describe('splitVersion', () => {
  it('treats an unversioned path as the newest version', () => {
    assert.deepEqual(splitVersion('/containers/json'), { version: MAX_API_VERSION, path: '/containers/json' });
    assert.deepEqual(splitVersion('/_ping'), { version: MAX_API_VERSION, path: '/_ping' });
  });

  it('splits a versioned path', () => {
    assert.deepEqual(splitVersion('/v1.47/containers/json'), { version: '1.47', path: '/containers/json' });
    assert.deepEqual(splitVersion(`/v${MIN_API_VERSION}/info`), { version: MIN_API_VERSION, path: '/info' });
    assert.deepEqual(splitVersion(`/v${MAX_API_VERSION}/info`), { version: MAX_API_VERSION, path: '/info' });
  });

  it('leaves things that only look like a version alone', () => {
    assert.deepEqual(splitVersion('/v1/info'), { version: MAX_API_VERSION, path: '/v1/info' });
    assert.deepEqual(splitVersion('/v1.47'), { version: MAX_API_VERSION, path: '/v1.47' });
    assert.deepEqual(splitVersion('/volumes/v1.2/x'), { version: MAX_API_VERSION, path: '/volumes/v1.2/x' });
  });

  it('refuses a version that is too new, as Docker words it, with a 400', () => {
    assert.throws(
      () => splitVersion('/v1.99/version'),
      (err: unknown) => {
        assert.ok(err instanceof InvalidParameter);
        assert.equal(err.message, `client version 1.99 is too new. Maximum supported API version is ${MAX_API_VERSION}`);
        assert.equal(toHttpStatus(err), 400);
        return true;
      },
    );
  });

  it('refuses a version that is too old', () => {
    assert.throws(() => splitVersion('/v1.12/version'), /client version 1\.12 is too old\. Minimum supported API version is/);
  });
});

describe('qbool', () => {
  it('accepts Docker\'s true spellings', () => {
    for (const v of ['1', 'true', 'True', 'TRUE']) assert.equal(qbool(q(`all=${v}`), 'all'), true, v);
  });

  it('reads everything else as false', () => {
    for (const v of ['0', 'false', 'False', 'yes', 'no', '2']) assert.equal(qbool(q(`all=${v}`), 'all'), false, v);
  });

  it('uses the default when the parameter is missing or empty', () => {
    assert.equal(qbool(q(''), 'all'), false);
    assert.equal(qbool(q(''), 'all', true), true);
    assert.equal(qbool(q('all='), 'all', true), true);
    assert.equal(qbool(q('all='), 'all'), false);
  });
});

describe('parseFilters', () => {
  const filters = (obj: unknown): Map<string, string[]> =>
    parseFilters(q(`filters=${encodeURIComponent(JSON.stringify(obj))}`));

  it('is empty without a filters parameter', () => {
    assert.equal(parseFilters(q('')).size, 0);
    assert.equal(parseFilters(q('filters=')).size, 0);
  });

  it('reads the map form and keeps only true values', () => {
    const f = filters({ name: { web: true, db: true }, label: { 'a=b': true, off: false } });
    assert.deepEqual(f.get('name'), ['web', 'db']);
    assert.deepEqual(f.get('label'), ['a=b']);
  });

  it('reads the old list form', () => {
    const f = filters({ status: ['running', 'exited'], dangling: [true] });
    assert.deepEqual(f.get('status'), ['running', 'exited']);
    assert.deepEqual(f.get('dangling'), ['true']);
  });

  it('rejects malformed filters with InvalidParameter', () => {
    for (const raw of ['{not json', '"a string"', '{"name":"web"}', '{"name":3}', 'null']) {
      assert.throws(() => parseFilters(q(`filters=${encodeURIComponent(raw)}`)), InvalidParameter, raw);
    }
  });
});

describe('Router.match', () => {
  const r = new Router();
  const noop = (): void => {};
  r.get('/containers/json', noop);
  r.get('/containers/{id}/json', noop);
  r.post('/containers/{id}/start', noop);
  r.delete('/containers/{id}', noop);
  r.get('/images/{*}/json', noop);
  r.get('/a.b', noop);

  it('finds a route and decodes its parameters', () => {
    const m = r.match('GET', '/containers/my%20c/json');
    assert.ok(m.route);
    assert.deepEqual(m.params, ['my c']);
    assert.equal(m.methodMismatch, false);
  });

  it('prefers the literal route listed first', () => {
    const m = r.match('GET', '/containers/json');
    assert.ok(m.route);
    assert.deepEqual(m.params, []);
  });

  it('lets {*} span slashes (image names with a registry and a path)', () => {
    const m = r.match('GET', '/images/127.0.0.1:5000/team/app:1/json');
    assert.deepEqual(m.params, ['127.0.0.1:5000/team/app:1']);
  });

  it('tells a wrong method (405) from an unknown path (404)', () => {
    const wrong = r.match('PUT', '/containers/x/start');
    assert.equal(wrong.route, undefined);
    assert.equal(wrong.methodMismatch, true);
    const unknown = r.match('GET', '/no/such/path');
    assert.equal(unknown.route, undefined);
    assert.equal(unknown.methodMismatch, false);
  });

  it('does not let a {name} segment span slashes or regex characters match loosely', () => {
    assert.equal(r.match('GET', '/containers/a/b/json').route, undefined);
    assert.equal(r.match('GET', '/aXb').route, undefined);
    assert.ok(r.match('GET', '/a.b').route);
  });
});
