import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHumanSize, logLimits, parseLogConfig } from '../../src/containers/log-config.js';
import { logFiles } from '../../src/containers/log-rotator.js';
import { readLog } from '../../src/containers/log-file.js';
import { parseCreateRequest } from '../../src/containers/create-request.js';
import { InvalidParameter } from '../../src/errors.js';

describe('log config', () => {
  it('defaults to json-file and keeps the options as sent', () => {
    assert.deepEqual(parseLogConfig(undefined), { Type: 'json-file', Config: {} });
    assert.deepEqual(parseLogConfig({ Type: '', Config: null }), { Type: 'json-file', Config: {} });
    assert.deepEqual(parseLogConfig({ Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } }).Config, { 'max-size': '10m', 'max-file': '3' });
    assert.deepEqual(parseLogConfig({ Type: 'none', Config: { anything: 'x' } }), { Type: 'none', Config: { anything: 'x' } });
  });
  it("refuses what moby refuses, with its words", () => {
    const bad = (raw: unknown, re: RegExp): void => assert.throws(() => parseLogConfig(raw), (e: Error) => e instanceof InvalidParameter && re.test(e.message));
    bad({ Type: 'syslog' }, /^logger: no log driver named 'syslog' is registered$/);
    bad({ Type: 'json-file', Config: { bogus: '1' } }, /^unknown log opt 'bogus' for json-file log driver$/);
    bad({ Config: { mode: 'fast' } }, /logging mode not supported: fast/);
    bad({ Config: { 'max-size': 'lots' } }, /invalid size: 'lots'/);
    bad({ Config: { 'max-size': '0' } }, /max-size must be a positive number/);
    bad({ Config: { 'max-file': '0' } }, /max-file cannot be less than 1/);
    bad({ Config: { 'max-file': 'x' } }, /strconv.Atoi: parsing "x": invalid syntax/);
  });
  it('reads sizes as go-units does (decimal) and the rotation limits', () => {
    assert.equal(fromHumanSize('1k'), 1000);
    assert.equal(fromHumanSize('10m'), 10_000_000);
    assert.equal(fromHumanSize('1.5KB'), 1500);
    assert.equal(fromHumanSize('2g'), 2e9);
    assert.deepEqual(logLimits({ Type: 'json-file', Config: { 'max-size': '1k', 'max-file': '3' } }), { maxSize: 1000, maxFile: 3 });
    assert.deepEqual(logLimits({ Type: 'json-file', Config: { 'max-size': '1k' } }), { maxSize: 1000, maxFile: 1 });
    assert.equal(logLimits({ Type: 'json-file', Config: {} }), undefined);
    assert.equal(logLimits({ Type: 'none', Config: { 'max-size': '1k' } }), undefined);
  });
});

describe('rotated logs', () => {
  it('are read oldest first, then the live file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-logs-'));
    const p = join(dir, 'container.log');
    const line = (n: number): string => `2024-01-01T00:00:0${n}.000000000+00:00 stdout F l${n}\n`;
    writeFileSync(`${p}.2`, line(1));
    writeFileSync(`${p}.1`, line(2));
    writeFileSync(p, line(3));
    assert.deepEqual(logFiles(p), [`${p}.2`, `${p}.1`, p]);
    const { entries, offset } = await readLog(p);
    assert.deepEqual(entries.map((e) => e.data.toString()), ['l1\n', 'l2\n', 'l3\n']);
    assert.equal(offset, line(3).length);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('container-wide MAC address', () => {
  it('moves to the main network\'s endpoint', () => {
    const r = parseCreateRequest({ Image: 'x', MacAddress: '02:42:ac:11:00:09' });
    assert.deepEqual(r.endpoints, { bridge: { MacAddress: '02:42:ac:11:00:09' } });
    const u = parseCreateRequest({ Image: 'x', MacAddress: '02:42:ac:11:00:09', HostConfig: { NetworkMode: 'net1' }, NetworkingConfig: { EndpointsConfig: { net1: { Aliases: ['a'] } } } });
    assert.deepEqual(u.endpoints, { net1: { Aliases: ['a'], MacAddress: '02:42:ac:11:00:09' } });
  });
  it('conflicts are 400 with moby\'s words', () => {
    assert.throws(() => parseCreateRequest({ Image: 'x', MacAddress: '02:42:ac:11:00:09', HostConfig: { NetworkMode: 'host' } }), /conflicting options: mac-address and the network mode/);
    assert.throws(
      () => parseCreateRequest({ Image: 'x', MacAddress: '02:42:ac:11:00:09', HostConfig: { NetworkMode: 'n' }, NetworkingConfig: { EndpointsConfig: { other: {} } } }),
      /HostConfig.NetworkMode must match the identity of a network/,
    );
  });
});
