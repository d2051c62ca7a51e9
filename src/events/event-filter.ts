import { InvalidParameter } from '../errors.js';
import type { DockerEvent } from './event-bus.js';

/** The filters `GET /events` accepts (moby `acceptedEventFilters`). */
const ACCEPTED = new Set(['config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume']);

/** Actions the CLI sends without their `: command` tail, matched by prefix (moby#25798). */
const PREFIX_ACTIONS = new Set(['health_status', 'exec_create', 'exec_start']);

/**
 * `docker events --filter` semantics (moby `daemon/events/filter.go`): every key given must match;
 * within a key any value may. Names match by prefix of the actor's id or `name` attribute.
 */
export class EventFilter {
  constructor(private readonly f: Map<string, string[]>) {
    for (const k of f.keys()) if (!ACCEPTED.has(k)) throw new InvalidParameter(`invalid filter '${k}'`);
  }

  matches(e: DockerEvent): boolean {
    const attrs = e.Actor.Attributes;
    const eventValues = this.f.get('event');
    const eventOk = eventValues?.some((v) => PREFIX_ACTIONS.has(v)) ? this.fuzzy('event', e.Action) : this.exact('event', e.Action);
    return (
      eventOk &&
      this.exact('type', e.Type) &&
      this.exact('scope', e.scope) &&
      ['daemon', 'container', 'plugin', 'volume', 'network', 'node', 'service', 'secret', 'config'].every(
        (k) => this.fuzzy(k, e.Actor.ID) || this.fuzzy(k, attrs['name']),
      ) &&
      this.image(e) &&
      this.labels(attrs)
    );
  }

  /** Images match by id or name, with or without their tag; a container event by its image. */
  private image(e: DockerEvent): boolean {
    if (!this.f.get('image')?.length) return true;
    const name = e.Actor.Attributes[e.Type === 'image' ? 'name' : 'image'] ?? '';
    return [e.Actor.ID, name, stripTag(e.Actor.ID), stripTag(name)].some((s) => this.exact('image', s));
  }

  private labels(attrs: Record<string, string>): boolean {
    for (const v of this.f.get('label') ?? []) {
      const i = v.indexOf('=');
      const k = i < 0 ? v : v.slice(0, i);
      if (!(k in attrs)) return false;
      if (i >= 0 && attrs[k] !== v.slice(i + 1)) return false;
    }
    return true;
  }

  private exact(key: string, source: string): boolean {
    const vals = this.f.get(key);
    return !vals?.length || vals.includes(source);
  }

  private fuzzy(key: string, source: string | undefined): boolean {
    const vals = this.f.get(key);
    if (!vals?.length) return true;
    if (source === undefined) return false;
    return vals.some((v) => source === v || source.startsWith(v));
  }
}

/** `busybox:latest` → `busybox`, `localhost:5000/x:1` → `localhost:5000/x`; digests and ids stay. */
function stripTag(ref: string): string {
  if (ref.includes('@')) return ref;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? ref.slice(0, colon) : ref;
}

/**
 * An events `since`/`until` value in nanoseconds since the epoch, or undefined when not given.
 * Docker's server takes unix seconds with an optional fraction (the CLI converts `10m` and dates
 * before sending); arca also takes RFC 3339 from clients that send dates as they are.
 */
export function parseEventTime(v: string | null): bigint | undefined {
  if (v === null || v === '') return undefined;
  const m = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (m) return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
  if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n;
  }
  // moby answers with the strconv error of the seconds part.
  throw new InvalidParameter(`strconv.ParseInt: parsing "${v.split('.')[0]}": invalid syntax`);
}
