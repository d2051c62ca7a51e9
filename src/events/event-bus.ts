import { JsonInteger } from '../json-integer.js';

/**
 * The daemon's event bus: what `docker events` streams. Managers emit into it through the small
 * {@link EventSink} contract; the API subscribes. A bounded ring keeps the last events for
 * `--since`/`--until` (moby keeps 256; arca keeps {@link DEFAULT_HISTORY}).
 */

/** Docker's event types (moby `api/types/events`). */
export type EventType = 'builder' | 'config' | 'container' | 'daemon' | 'image' | 'network' | 'node' | 'plugin' | 'secret' | 'service' | 'volume';

/** One event as Docker's JSON has it (moby `events.Message`), legacy fields included (API < 1.52). */
export interface DockerEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local' | 'swarm';
  time: number;
  /** Nanoseconds since the epoch, exact (above 2^53: a JS number would round it). */
  timeNano: JsonInteger;
}

/** What a component needs to emit events: one method. */
export interface EventSink {
  /** Records an event now and hands it to every subscriber. */
  emit(type: EventType, action: string, id: string, attributes?: Record<string, string>): void;
}

/** A sink that drops everything, for components used without a daemon (unit tests). */
export const NO_EVENTS: EventSink = { emit: () => {} };

/** The few fields of a container its events carry (moby `LogContainerEventWithAttributes`). */
export interface ContainerActor {
  Id: string;
  Name: string;
  Config: { Image: string; Labels?: Record<string, string> | null };
}

const DEFAULT_HISTORY = 1000;

export class EventBus implements EventSink {
  private readonly ring: DockerEvent[] = [];
  private next = 0;
  private readonly subscribers = new Set<(e: DockerEvent) => void>();
  /** The last timeNano handed out: two events in one millisecond still sort in emission order. */
  private lastNano = 0n;
  /** Wall clock and monotonic clock read together once: event times have nanosecond steps and never go back. */
  private readonly wallAtStart = BigInt(Date.now()) * 1_000_000n;
  private readonly hrAtStart = process.hrtime.bigint();

  constructor(private readonly capacity = DEFAULT_HISTORY) {}

  emit(type: EventType, action: string, id: string, attributes: Record<string, string> = {}): void {
    this.publish(this.make(type, action, id, attributes));
  }

  /** A container event: its labels, then `extra`, then `image` and `name` (Docker's order of precedence). */
  container(action: string, c: ContainerActor, extra: Record<string, string> = {}): void {
    this.emit('container', action, c.Id, { ...(c.Config.Labels ?? {}), ...extra, image: c.Config.Image, name: c.Name.replace(/^\//, '') });
  }

  /** A container's named volumes, mounted at its start and unmounted after its exit. */
  volumeMounts(action: 'mount' | 'unmount', c: { Id: string; Mounts: { Type: string; Name?: string; Destination: string; RW: boolean; Propagation: string }[] }): void {
    for (const m of c.Mounts) {
      if (m.Type !== 'volume' || !m.Name) continue;
      const attrs: Record<string, string> = { container: c.Id, driver: 'local' };
      if (action === 'mount') Object.assign(attrs, { destination: m.Destination, propagation: m.Propagation, 'read/write': String(m.RW) });
      this.emit('volume', action, m.Name, attrs);
    }
  }

  /** How many clients follow the stream now (`NEventsListener` of `docker info`). */
  get listenerCount(): number {
    return this.subscribers.size;
  }

  /** Registers a live listener; returns its unsubscribe function. */
  subscribe(fn: (e: DockerEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Events kept in the ring, oldest first. */
  history(): DockerEvent[] {
    if (this.ring.length < this.capacity) return [...this.ring];
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  private make(type: EventType, action: string, id: string, attributes: Record<string, string>): DockerEvent {
    let nano = this.wallAtStart + (process.hrtime.bigint() - this.hrAtStart);
    if (nano <= this.lastNano) nano = this.lastNano + 1n;
    this.lastNano = nano;
    const e: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nano / 1_000_000_000n),
      timeNano: new JsonInteger(nano),
    };
    // moby fills the deprecated fields for container and image events only.
    if (type === 'container' || type === 'image') {
      // Go's omitempty: a prune event, which names no object, has no `id`.
      const legacy: Partial<DockerEvent> = id ? { status: action, id } : { status: action };
      if (type === 'container' && attributes['image']) legacy.from = attributes['image'];
      return { ...legacy, ...e };
    }
    return e;
  }

  private publish(e: DockerEvent): void {
    if (this.ring.length < this.capacity) this.ring.push(e);
    else this.ring[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
    for (const fn of this.subscribers) {
      try {
        fn(e);
      } catch {
        /* a subscriber's failure is its own */
      }
    }
  }
}
