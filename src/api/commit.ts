import type { Daemon } from '../daemon.js';
import { ContainerCommitter } from '../containers/container-committer.js';
import type { ContainerConfig } from '../containers/container-record.js';
import { qbool, type Router } from './router.js';

/** `docker commit`: POST /commit makes an image of a container's changes. */
export function registerCommit(r: Router, d: Daemon): void {
  const committer = new ContainerCommitter(d.containers, d.images, d.events);

  r.post('/commit', async (c) => {
    const q = c.query;
    const body = await c.json<Partial<ContainerConfig>>();
    const id = await committer.commit(q.get('container') ?? '', {
      repo: q.get('repo') ?? undefined,
      tag: q.get('tag') ?? undefined,
      comment: q.get('comment') ?? '',
      author: q.get('author') ?? '',
      pause: qbool(q, 'pause', true),
      changes: q.getAll('changes').filter((x) => x !== ''),
      config: body && typeof body === 'object' && !Array.isArray(body) ? body : undefined,
    });
    c.send(201, { Id: id });
  });
}
