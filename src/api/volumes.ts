import type { Router } from './router.js';
import { compareVersions, parseFilters, qbool } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter } from '../errors.js';

/** A JSON object of strings (`Labels`, `DriverOpts`), or null; anything else is a 400. */
function stringMap(value: unknown, field: string): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidParameter(`json: cannot unmarshal ${jsonKind(value)} into Go struct field CreateOptions.${field} of type map[string]string`);
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new InvalidParameter(`json: cannot unmarshal ${jsonKind(v)} into Go struct field CreateOptions.${field}.${k} of type string`);
    }
  }
  return value as Record<string, string>;
}

function optionalString(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') {
    throw new InvalidParameter(`json: cannot unmarshal ${jsonKind(value)} into Go struct field CreateOptions.${field} of type string`);
  }
  return value;
}

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** Volume endpoints: create, list, inspect, remove, prune. */
export function registerVolumes(r: Router, d: Daemon): void {
  r.get('/volumes', (c) => {
    const volumes = d.volumes.list(parseFilters(c.query));
    // moby sends null Warnings when there are none (checked against dockerd 20.10).
    c.send(200, { Volumes: volumes, Warnings: null });
  });

  r.post('/volumes/create', async (c) => {
    const body = await c.json();
    const volume = d.volumes.create({
      name: optionalString(body['Name'], 'Name'),
      driver: optionalString(body['Driver'], 'Driver'),
      driverOpts: stringMap(body['DriverOpts'], 'DriverOpts'),
      labels: stringMap(body['Labels'], 'Labels'),
    });
    c.send(201, volume);
  });

  // Before API 1.42 prune removed every unused volume, named ones too.
  r.post('/volumes/prune', (c) => {
    const allByDefault = compareVersions(c.version, '1.42') < 0;
    c.send(200, d.volumes.prune(parseFilters(c.query), allByDefault));
  });

  r.get('/volumes/{name}', (c) => c.send(200, d.volumes.get(c.params[0]!)));

  r.delete('/volumes/{name}', (c) => {
    d.volumes.remove(c.params[0]!, qbool(c.query, 'force'));
    c.empty(204);
  });
}
