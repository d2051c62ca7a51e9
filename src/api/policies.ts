import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter, NotFound } from '../errors.js';
import { parseIp } from '../network/ipam/ip-address.js';
import { parsePolicies, validatePolicy } from '../network/policies/policy-parse.js';
import type { PolicyCounters, PolicyProto, StoredPolicy } from '../network/policies/policy-types.js';

/** Where arca's own extensions of the Engine API live (never versioned like `/v1.47/...`). */
export const POLICIES_PATH = '/arca/v1/policies';

const PROTOS: readonly PolicyProto[] = ['tcp', 'udp', 'sctp'];

/** The counters as the API shows them (Engine API casing). */
function countersView(c: PolicyCounters): Record<string, number> {
  return { AllowedPackets: c.allowedPackets, AllowedBytes: c.allowedBytes, DroppedPackets: c.droppedPackets, DroppedBytes: c.droppedBytes };
}

/** `5432/tcp`, `53/udp`, `5432` (tcp), or a number with a separate `proto`. */
export function parseCheckPort(port: unknown, proto: unknown): { proto: PolicyProto; port: number } {
  let text: string;
  if (typeof port === 'number') text = String(port);
  else if (typeof port === 'string') text = port.trim();
  else throw new InvalidParameter('port: required, e.g. "5432/tcp"');
  const m = /^([0-9]+)(?:\/([a-z]+))?$/i.exec(text);
  if (!m) throw new InvalidParameter(`port: invalid port "${text}": want PORT[/PROTO], e.g. "5432/tcp"`);
  const p = (m[2] ?? (typeof proto === 'string' && proto ? proto : 'tcp')).toLowerCase();
  if (!PROTOS.includes(p as PolicyProto)) throw new InvalidParameter(`port: invalid protocol "${p}" (tcp, udp, sctp)`);
  const n = Number(m[1]);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidParameter(`port: invalid port ${m[1]}: must be between 1 and 65535`);
  return { proto: p as PolicyProto, port: n };
}

/**
 * `/arca/v1/policies`: network policies (an arca extension of the Engine API). Documents are
 * shown as users write them (lowercase keys); what the daemon adds (`Counters`, check answers)
 * uses the Engine API's casing. Every change answers once it is enforced.
 */
export function registerPolicies(r: Router, d: Daemon): void {
  const P = POLICIES_PATH;

  r.get(P, (c) => {
    c.send(200, d.policies.list());
  });

  // Registered before `{name}`: the router takes the first pattern that matches.
  r.post(`${P}/apply`, async (c) => {
    const text = (await c.body()).toString('utf8');
    if (!text.trim()) throw new InvalidParameter('no policy documents in the request body');
    const project = c.query.get('project') || undefined;
    const docs = parsePolicies(text, project ? { project } : {});
    if (!docs.length) throw new InvalidParameter('no policy documents in the request body');
    const results = await d.policies.applyAll(docs);
    c.send(200, results.map((x) => ({ Name: x.name, Result: x.result })));
  });

  r.post(`${P}/check`, async (c) => {
    const body = await c.json();
    const from = body['from'];
    const to = body['to'];
    if (typeof from !== 'string' || !from) throw new InvalidParameter('from: required: a container name or id');
    if (typeof to !== 'string' || !to) throw new InvalidParameter('to: required: a container name or id, or an address');
    const { proto, port } = parseCheckPort(body['port'], body['proto']);
    const src = d.containers.find(from);
    if (!src) throw new NotFound(`No such container: ${from}`);
    let dst: { container: string } | { address: string };
    if (parseIp(to)) dst = { address: to };
    else {
      const target = d.containers.find(to);
      if (!target) throw new NotFound(`No such container: ${to}`);
      dst = { container: target.Id };
    }
    const answer = d.policies.check({ fromContainer: src.Id, to: dst, proto, port });
    c.send(200, {
      Allowed: answer.allowed,
      DecidedBy: answer.decidedBy.map((x) => ({ Policy: x.policy, Direction: x.direction, ...(x.rule !== undefined ? { Rule: x.rule } : {}) })),
      Reason: answer.reason,
    });
  });

  r.get(`${P}/{name}`, async (c) => {
    const p: StoredPolicy = d.policies.get(c.params[0]!);
    c.send(200, { ...p, Counters: countersView(await d.policies.counters(p.name)) });
  });

  r.put(`${P}/{name}`, async (c) => {
    const name = c.params[0]!;
    const body: unknown = await c.json<unknown>();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidParameter('body: want one policy document (a JSON object)');
    const raw = body as Record<string, unknown>;
    if (raw['name'] === undefined) raw['name'] = name;
    else if (raw['name'] !== name) throw new InvalidParameter(`name: "${String(raw['name'])}" does not match the name in the path, "${name}"`);
    const doc = validatePolicy(raw);
    const result = await d.policies.put(doc);
    c.send(result === 'created' ? 201 : 200, d.policies.get(doc.name));
  });

  r.delete(`${P}/{name}`, async (c) => {
    await d.policies.remove(c.params[0]!);
    c.empty(204);
  });
}
