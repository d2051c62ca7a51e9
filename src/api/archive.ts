import type { ServerResponse } from 'node:http';
import type { Daemon } from '../daemon.js';
import { ContainerArchive } from '../containers/archive/container-archive.js';
import { containerChanges } from '../containers/archive/overlay-changes.js';
import { errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { qbool, type Ctx, type Router } from './router.js';

const log = logger('arca:api:archive');

const STAT_HEADER = 'X-Docker-Container-Path-Stat';

/**
 * Streams a tar answer. Once the first byte is out the status is gone: a failure then cuts the
 * connection, so the client sees a broken archive rather than JSON glued onto a tar.
 */
async function tarAnswer(c: Ctx, fn: (begin: (headers: Record<string, string>) => ServerResponse) => Promise<void>): Promise<void> {
  try {
    await fn((headers) => {
      c.res.writeHead(200, { 'Content-Type': 'application/x-tar', ...headers });
      return c.res;
    });
  } catch (e) {
    if (!c.res.headersSent) throw e;
    log.warn('archive stream failed', { error: errorMessage(e) });
    c.res.destroy();
  }
}

/** A container's files: `docker cp` both ways and its stat, `docker export`, `docker diff`. */
export function registerArchive(r: Router, d: Daemon): void {
  const archive = new ContainerArchive(d.containers, d.events);

  r.head('/containers/{id}/archive', async (c) => {
    const stat = await archive.stat(c.params[0]!, c.query.get('path') ?? '');
    c.res.writeHead(200, { [STAT_HEADER]: stat, 'Content-Type': 'application/json' });
    c.res.end();
  });

  r.get('/containers/{id}/archive', (c) =>
    tarAnswer(c, (begin) => archive.copyFrom(c.params[0]!, c.query.get('path') ?? '', (stat) => begin({ [STAT_HEADER]: stat }))),
  );

  r.put('/containers/{id}/archive', async (c) => {
    await archive.copyTo(c.params[0]!, c.query.get('path') ?? '', c.req, {
      noOverwriteDirNonDir: qbool(c.query, 'noOverwriteDirNonDir'),
      copyUIDGID: qbool(c.query, 'copyUIDGID'),
    });
    c.empty(200);
  });

  r.get('/containers/{id}/export', (c) => tarAnswer(c, (begin) => archive.export(c.params[0]!, () => begin({}))));

  r.get('/containers/{id}/changes', async (c) => c.send(200, await containerChanges(d, c.params[0]!)));
}
