import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter } from '../../src/errors.js';
import { firewallPorts } from '../../src/network/ports/firewall-ports.js';
import {
  exposedPorts,
  hostIpsFor,
  networkSettingsPorts,
  parsePortKey,
  parsePublishSpec,
  portRequests,
  psPorts,
  publishedFromSettings,
  publishSpecsToConfig,
  type PublishedPort,
} from '../../src/network/ports/port-spec.js';

function invalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidParameter, String(err));
    assert.equal((err as Error).message, message);
    return true;
  });
}

describe('port keys', () => {
  it('parses Docker API keys', () => {
    assert.deepEqual(parsePortKey('80/tcp'), { port: 80, proto: 'tcp' });
    assert.deepEqual(parsePortKey('53/udp'), { port: 53, proto: 'udp' });
    assert.deepEqual(parsePortKey('8080'), { port: 8080, proto: 'tcp' });
    assert.deepEqual(parsePortKey('9/SCTP'), { port: 9, proto: 'sctp' });
  });

  it('refuses bad keys with the daemon\'s message', () => {
    invalid(() => parsePortKey('abc/tcp'), 'invalid port specification: "abc"');
    invalid(() => parsePortKey('0/tcp'), 'invalid port specification: "0"');
    invalid(() => parsePortKey('65536'), 'invalid port specification: "65536"');
    invalid(() => parsePortKey('80-81/tcp'), 'invalid port specification: "80-81"');
    invalid(() => parsePortKey('80/icmp'), 'invalid proto: icmp');
  });
});

describe('port requests from container config', () => {
  it('turns PortBindings into requests: fixed, ephemeral, range, host address', () => {
    const reqs = portRequests({
      ExposedPorts: { '80/tcp': {}, '443/tcp': {} },
      PortBindings: {
        '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '' }],
        '53/udp': [{ HostIp: '[::1]', HostPort: '0' }],
        '9000/tcp': [{ HostPort: '8000-8010' }],
      },
    });
    assert.deepEqual(reqs, [
      { proto: 'udp', containerPort: 53, hostIp: '::1', hostPort: 0, hostPortEnd: 0 },
      { proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 },
      { proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPort: 0, hostPortEnd: 0 },
      { proto: 'tcp', containerPort: 9000, hostIp: '', hostPort: 8000, hostPortEnd: 8010 },
    ]);
  });

  it('PublishAllPorts gives every exposed port without a binding an ephemeral one', () => {
    const reqs = portRequests({
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      PortBindings: { '80/tcp': [{ HostPort: '8080' }] },
      PublishAllPorts: true,
    });
    assert.deepEqual(reqs, [
      { proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 },
      { proto: 'udp', containerPort: 53, hostIp: '', hostPort: 0, hostPortEnd: 0 },
    ]);
    assert.deepEqual(portRequests({ ExposedPorts: { '80/tcp': {} } }), []);
  });

  it('refuses bad bindings with Docker\'s message', () => {
    invalid(() => portRequests({ PortBindings: { 'x/tcp': [] } }), 'invalid port specification: "x"');
    invalid(() => portRequests({ PortBindings: { '80/tcp': [{ HostPort: 'abc' }] } }), 'invalid port specification: "abc"');
    invalid(() => portRequests({ PortBindings: { '80/tcp': [{ HostPort: '70000' }] } }), 'invalid port specification: "70000"');
    invalid(() => portRequests({ PortBindings: { '80/tcp': [{ HostPort: '9-8' }] } }), 'invalid port specification: "9-8"');
    invalid(() => portRequests({ PortBindings: { '80/tcp': [{ HostIp: 'localhost', HostPort: '1' }] } }), 'invalid IP address: localhost');
  });

  it('exposes the keys of PortBindings too', () => {
    assert.deepEqual(exposedPorts({ ExposedPorts: { '443/tcp': {} }, PortBindings: { '80/tcp': null } }), [
      { port: 80, proto: 'tcp' },
      { port: 443, proto: 'tcp' },
    ]);
  });

  it('an empty host address means 0.0.0.0 and :: unless the network says otherwise', () => {
    assert.deepEqual(hostIpsFor(''), ['0.0.0.0', '::']);
    assert.deepEqual(hostIpsFor('', { ipv6: false }), ['0.0.0.0']);
    assert.deepEqual(hostIpsFor('', { hostBindingIpv4: '127.0.0.1' }), ['127.0.0.1']);
    assert.deepEqual(hostIpsFor('192.0.2.1'), ['192.0.2.1']);
  });
});

describe('Docker output shapes', () => {
  const published: PublishedPort[] = [
    { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPort: 8080 },
    { proto: 'tcp', containerPort: 80, hostIp: '::', hostPort: 8080 },
    { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPort: 5300 },
  ];
  const exposed = [
    { port: 80, proto: 'tcp' as const },
    { port: 443, proto: 'tcp' as const },
    { port: 53, proto: 'udp' as const },
  ];

  it('NetworkSettings.Ports lists every exposed port, null when unpublished', () => {
    const ports = networkSettingsPorts(exposed, published);
    assert.deepEqual(ports, {
      '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5300' }],
      '80/tcp': [
        { HostIp: '0.0.0.0', HostPort: '8080' },
        { HostIp: '::', HostPort: '8080' },
      ],
      '443/tcp': null,
    });
    assert.deepEqual(JSON.stringify(ports['80/tcp']), '[{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}]');
    assert.deepEqual(publishedFromSettings(ports), [published[2], published[0], published[1]]);
  });

  it('the ps Ports list has published ports, then exposed-only ones', () => {
    assert.deepEqual(psPorts(exposed, published), [
      { IP: '127.0.0.1', PrivatePort: 53, PublicPort: 5300, Type: 'udp' },
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { PrivatePort: 443, Type: 'tcp' },
    ]);
  });

  it('maps published ports to DNAT entries by address family', () => {
    const ep = { endpointId: 'e', networkId: 'n', ipv4: '172.17.0.2' };
    assert.deepEqual(firewallPorts(published, ep), [
      { endpointId: 'e', networkId: 'n', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
      { endpointId: 'e', networkId: 'n', proto: 'udp', hostIp: '127.0.0.1', hostPort: 5300, containerIp: '172.17.0.2', containerPort: 53 },
    ]);
    assert.equal(firewallPorts(published, { ...ep, ipv6: 'fd00::2' }).length, 3);
  });
});

describe('-p syntax', () => {
  it('parses the forms docker run accepts', () => {
    assert.deepEqual(parsePublishSpec('80'), [{ key: '80/tcp', binding: { HostIp: '', HostPort: '' } }]);
    assert.deepEqual(parsePublishSpec('8080:80'), [{ key: '80/tcp', binding: { HostIp: '', HostPort: '8080' } }]);
    assert.deepEqual(parsePublishSpec('127.0.0.1:8080:80/udp'), [
      { key: '80/udp', binding: { HostIp: '127.0.0.1', HostPort: '8080' } },
    ]);
    assert.deepEqual(parsePublishSpec('[::1]:8080:80'), [{ key: '80/tcp', binding: { HostIp: '::1', HostPort: '8080' } }]);
    assert.deepEqual(parsePublishSpec('::1:8080:80'), [{ key: '80/tcp', binding: { HostIp: '::1', HostPort: '8080' } }]);
    assert.deepEqual(parsePublishSpec('127.0.0.1::80'), [{ key: '80/tcp', binding: { HostIp: '127.0.0.1', HostPort: '' } }]);
    assert.deepEqual(parsePublishSpec('8000-8001:80-81'), [
      { key: '80/tcp', binding: { HostIp: '', HostPort: '8000' } },
      { key: '81/tcp', binding: { HostIp: '', HostPort: '8001' } },
    ]);
    // A host range for one container port: the daemon picks one port in it.
    assert.deepEqual(parsePublishSpec('8000-8010:80'), [{ key: '80/tcp', binding: { HostIp: '', HostPort: '8000-8010' } }]);
    assert.deepEqual(parsePublishSpec('3000-3001'), [
      { key: '3000/tcp', binding: { HostIp: '', HostPort: '' } },
      { key: '3001/tcp', binding: { HostIp: '', HostPort: '' } },
    ]);
  });

  it('refuses bad specs with the CLI\'s messages', () => {
    invalid(() => parsePublishSpec('8080:abc'), 'invalid containerPort: abc');
    invalid(() => parsePublishSpec('abc:80'), 'invalid hostPort: abc');
    invalid(() => parsePublishSpec('8000-8002:80-81'), 'invalid ranges specified for container and host Ports: 80-81 and 8000-8002');
    invalid(() => parsePublishSpec('8080:80/icmp'), 'invalid proto: icmp');
    invalid(() => parsePublishSpec('8080:'), 'no port specified: 8080:<empty>');
    invalid(() => parsePublishSpec('1.2.3:8080:80'), 'invalid IP address: 1.2.3');
    invalid(() => parsePublishSpec('0'), 'invalid containerPort: 0');
  });

  it('groups specs into PortBindings', () => {
    assert.deepEqual(publishSpecsToConfig(['8080:80', '127.0.0.1:8081:80', '53/udp']), {
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      PortBindings: {
        '80/tcp': [
          { HostIp: '', HostPort: '8080' },
          { HostIp: '127.0.0.1', HostPort: '8081' },
        ],
        '53/udp': [{ HostIp: '', HostPort: '' }],
      },
    });
  });
});
