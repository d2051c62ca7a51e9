import type { Router } from './router.js';
import { parseFilters, qbool } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter } from '../errors.js';
import type { NetworkCreateRequest } from '../network/network-manager.js';
import type { EndpointRequest } from '../network/network-record.js';

function kind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** Checks the JSON types of a create body the way Go's decoder would complain. */
function checkTypes(body: Record<string, unknown>, struct: string, fields: Record<string, 'string' | 'boolean' | 'object' | 'number'>): void {
  for (const [k, t] of Object.entries(fields)) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    const got = kind(v);
    if (got !== t) {
      const goType = t === 'object' ? 'map[string]string' : t === 'boolean' ? 'bool' : t === 'number' ? 'int' : 'string';
      throw new InvalidParameter(`json: cannot unmarshal ${got} into Go struct field ${struct}.${k} of type ${goType}`);
    }
  }
}

/** Network endpoints: create, list, inspect, remove, prune, connect, disconnect. */
export function registerNetworks(r: Router, d: Daemon): void {
  r.get('/networks', (c) => {
    const list = d.networks.list(parseFilters(c.query));
    // Since API 1.28 the list carries no Containers (inspect has them).
    c.send(200, list.map((n) => d.networks.view(n, false)));
  });

  r.post('/networks/create', async (c) => {
    const body = await c.json();
    checkTypes(body, 'CreateRequest', {
      Name: 'string',
      Driver: 'string',
      Options: 'object',
      Labels: 'object',
      Internal: 'boolean',
      Attachable: 'boolean',
      Ingress: 'boolean',
      ConfigOnly: 'boolean',
      EnableIPv4: 'boolean',
      EnableIPv6: 'boolean',
      IPAM: 'object',
      Scope: 'string',
    });
    const ipam = body['IPAM'] as Record<string, unknown> | undefined;
    if (ipam && ipam['Config'] !== undefined && ipam['Config'] !== null && !Array.isArray(ipam['Config'])) {
      throw new InvalidParameter(`json: cannot unmarshal ${kind(ipam['Config'])} into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig`);
    }
    const res = await d.networks.create(body as unknown as NetworkCreateRequest);
    c.send(201, res);
  });

  r.post('/networks/prune', async (c) => {
    const { NetworksDeleted } = await d.networks.prune(parseFilters(c.query));
    // moby's list is nil (null) when nothing went.
    c.send(200, { NetworksDeleted: NetworksDeleted.length ? NetworksDeleted : null });
  });

  r.get('/networks/{id}', async (c) => {
    const n = d.networks.get(c.params[0]!);
    const scope = c.query.get('scope');
    if (scope && scope !== 'local') throw new InvalidParameter(`network ${c.params[0]} not found`);
    c.send(200, qbool(c.query, 'verbose') ? await d.networks.verboseView(n) : d.networks.view(n, true));
  });

  r.delete('/networks/{id}', async (c) => {
    await d.networks.remove(c.params[0]!);
    c.empty(204);
  });

  r.post('/networks/{id}/connect', async (c) => {
    const body = await c.json();
    const container = body['Container'];
    if (typeof container !== 'string' || !container) throw new InvalidParameter('no container specified');
    const cfg = (body['EndpointConfig'] ?? {}) as EndpointRequest;
    if (typeof cfg !== 'object' || Array.isArray(cfg)) throw new InvalidParameter('invalid EndpointConfig');
    await d.networks.connect(c.params[0]!, container, cfg);
    c.empty(200);
  });

  r.post('/networks/{id}/disconnect', async (c) => {
    const body = await c.json();
    const container = body['Container'];
    if (typeof container !== 'string' || !container) throw new InvalidParameter('no container specified');
    await d.networks.disconnect(c.params[0]!, container, body['Force'] === true);
    c.empty(200);
  });
}
