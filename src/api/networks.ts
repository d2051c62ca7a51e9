import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';
import { NotFound } from '../errors.js';

/**
 * Networks arrive with the NetworkManager (issue 3). Until then the three predefined networks are
 * listed so that clients which look them up (`docker inspect`, compose) get Docker's answers.
 */
const PREDEFINED = ['bridge', 'host', 'none'];

function shape(name: string): Record<string, unknown> {
  return {
    Name: name,
    Id: name.padEnd(64, '0'),
    Created: new Date(0).toISOString(),
    Scope: 'local',
    Driver: name === 'bridge' ? 'bridge' : name === 'host' ? 'host' : 'null',
    EnableIPv4: name === 'bridge',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  };
}

export function registerNetworks(r: Router, _d: Daemon): void {
  r.get('/networks', (c) => c.send(200, PREDEFINED.map(shape)));
  r.get('/networks/{id}', (c) => {
    const name = c.params[0]!;
    const hit = PREDEFINED.find((n) => n === name || shape(n)['Id'] === name);
    if (!hit) throw new NotFound(`network ${name} not found`);
    c.send(200, shape(hit));
  });
}
