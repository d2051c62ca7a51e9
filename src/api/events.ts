import type { Router } from './router.js';
import { parseFilters } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter } from '../errors.js';
import { stringifyJson } from '../json-integer.js';
import type { DockerEvent } from '../events/event-bus.js';
import { EventFilter, parseEventTime } from '../events/event-filter.js';

/**
 * `GET /events`: the kept events between `since` and `until` that pass the filters, then (unless
 * `until` is past) the live ones until `until` or the client leaves (moby `getEvents`).
 */
export function registerEvents(r: Router, d: Daemon): void {
  r.get('/events', (c) => {
    const since = parseEventTime(c.query.get('since'));
    const until = parseEventTime(c.query.get('until'));
    if (until !== undefined && since !== undefined && until < since) {
      throw new InvalidParameter(`\`since\` time (${c.query.get('since')}) cannot be after \`until\` time (${c.query.get('until')})`);
    }
    const filter = new EventFilter(parseFilters(c.query));
    const nowNano = BigInt(Date.now()) * 1_000_000n;
    const onlyPast = until !== undefined && until < nowNano;

    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    c.res.flushHeaders();
    const write = (e: DockerEvent): void => {
      c.res.write(stringifyJson(e) + '\n');
    };
    const inWindow = (e: DockerEvent): boolean =>
      (since === undefined || e.timeNano.value >= since) && (until === undefined || e.timeNano.value <= until);
    // History and subscription happen in one turn of the event loop: nothing falls between them.
    if (since !== undefined || until !== undefined) {
      for (const e of d.events.history()) if (inWindow(e) && filter.matches(e)) write(e);
    }
    const off = d.events.subscribe((e) => {
      if (filter.matches(e) && inWindow(e)) write(e);
    });
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      off();
      if (timer) clearTimeout(timer);
      c.res.end();
    };
    if (onlyPast) return finish();
    if (until !== undefined) timer = setTimeout(finish, Number((until - nowNano) / 1_000_000n));
    c.res.on('close', () => {
      off();
      if (timer) clearTimeout(timer);
    });
  });
}
