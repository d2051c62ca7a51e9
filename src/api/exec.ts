import type { Router } from './router.js';
import type { Daemon } from '../daemon.js';
import { resAsDuplex, streamType, writeUpgrade } from './containers.js';

export function registerExec(r: Router, d: Daemon): void {
  r.post('/containers/{id}/exec', async (c) => {
    c.send(201, d.execs.create(c.params[0]!, await c.json()));
  });

  r.post(
    '/exec/{id}/start',
    async (c) => {
      // Detached start (or a client that did not ask to upgrade): run it, answer at once.
      const body = await c.json<{ Detach?: boolean; Tty?: boolean }>();
      const id = c.params[0]!;
      d.execs.get(id);
      if (body.Detach) {
        await d.execs.start(id, undefined, Buffer.alloc(0), { tty: body.Tty });
        c.empty(200);
        return;
      }
      c.res.writeHead(200, { 'Content-Type': streamType(body.Tty ?? false, c.version) });
      c.res.flushHeaders();
      await d.execs.start(id, resAsDuplex(c.res, c.req.socket), Buffer.alloc(0), { tty: body.Tty });
    },
    async (h) => {
      const raw = await h.body();
      const body = (raw.length ? JSON.parse(raw.toString()) : {}) as { Detach?: boolean; Tty?: boolean };
      const id = h.params[0]!;
      d.execs.get(id);
      await d.execs.start(id, body.Detach ? undefined : h.socket, h.head, {
        tty: body.Tty,
        contentType: (tty) => streamType(tty, h.version),
        upgrade: (ct) => writeUpgrade(h.socket, ct),
      });
      if (body.Detach) h.socket.end();
    },
  );

  r.post('/exec/{id}/resize', (c) => {
    d.execs.resize(c.params[0]!, Number(c.query.get('h') ?? 0), Number(c.query.get('w') ?? 0));
    c.res.writeHead(200, { 'Content-Type': 'text/plain' });
    c.res.end();
  });

  r.get('/exec/{id}/json', (c) => c.send(200, d.execs.inspect(c.params[0]!)));
}
