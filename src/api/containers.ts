import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Router, Ctx, HijackCtx } from './router.js';
import { compareVersions, parseFilters, qbool } from './router.js';
import type { Daemon } from '../daemon.js';
import { InvalidParameter, NotFound, NotImplemented } from '../errors.js';
import type { WaitCondition } from '../containers/container-manager.js';
import type { ContainerRecord } from '../containers/container-record.js';
import { inspectView, listView } from '../containers/container-view.js';
import { runAttach, type AttachOptions } from '../containers/attach-session.js';
import { parseDetachKeys } from '../containers/detach-keys.js';
import { LogFollower, frame, readLog, type LogEntry } from '../containers/log-file.js';
import { StatsCollector } from '../containers/stats/container-stats.js';
import { stringifyJson } from '../json-integer.js';
import { gateContainerInspect } from './version-gates.js';
import { containerSize } from '../containers/container-size.js';
import { goDurationMs } from '../go-duration.js';

/** The stream content type: multiplexed without a TTY (API ≥ 1.42), raw with one. */
export function streamType(tty: boolean, version: string): string {
  if (tty || compareVersions(version, '1.42') < 0) return 'application/vnd.docker.raw-stream';
  return 'application/vnd.docker.multiplexed-stream';
}

/** Answers a hijack request: `101 UPGRADED`, then the raw connection is ours. */
export function writeUpgrade(socket: Duplex, contentType: string): void {
  socket.write(
    `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.51\r\n\r\n`,
  );
}

function statusFilter(c: ContainerRecord, wanted: string[]): boolean {
  return wanted.includes(c.State.Status === 'removing' ? 'removing' : c.State.Status);
}

function labelMatch(labels: Record<string, string>, exprs: string[]): boolean {
  return exprs.every((e) => {
    const i = e.indexOf('=');
    if (i < 0) return e in labels;
    return labels[e.slice(0, i)] === e.slice(i + 1);
  });
}

const LIST_FILTERS = new Set(['id', 'name', 'status', 'label', 'ancestor', 'exited', 'before', 'since', 'network', 'volume', 'health', 'is-task', 'publish', 'expose']);

/** Docker's timestamps: unix seconds, RFC 3339 or a date, or a duration meaning that long ago (`until=24h`). */
function parseTimestamp(v: string | null, name: string): number | undefined {
  if (v === null || v === '') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  const ago = goDurationMs(v);
  if (ago !== undefined) return (Date.now() - ago) / 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidParameter(`invalid value for "${name}": ${v}`);
  return t / 1000;
}

export function registerContainers(r: Router, d: Daemon): void {
  const cm = d.containers;

  r.get('/containers/json', (c) => {
    const all = qbool(c.query, 'all');
    const limit = Number(c.query.get('limit') ?? -1);
    const filters = parseFilters(c.query);
    for (const k of filters.keys()) if (!LIST_FILTERS.has(k)) throw new InvalidParameter(`invalid filter '${k}'`);
    let list = cm.all();
    const get = (k: string): string[] | undefined => filters.get(k);
    const statuses = get('status');
    if (statuses) {
      for (const s of statuses) {
        if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(s)) {
          throw new InvalidParameter(`invalid filter 'status=${s}'`);
        }
      }
    }
    if (!all && !statuses && limit <= 0 && !get('exited')) list = list.filter((x) => x.State.Status === 'running' || x.State.Status === 'paused' || x.State.Status === 'restarting');
    if (get('id')) list = list.filter((x) => get('id')!.some((p) => x.Id.startsWith(p)));
    if (get('name')) list = list.filter((x) => get('name')!.some((p) => new RegExp(p.replace(/^\//, '')).test(x.Name)));
    if (statuses) list = list.filter((x) => statusFilter(x, statuses));
    if (get('label')) list = list.filter((x) => labelMatch(x.Config.Labels ?? {}, get('label')!));
    if (get('exited')) list = list.filter((x) => x.State.Status === 'exited' && get('exited')!.includes(String(x.State.ExitCode)));
    if (get('ancestor')) {
      list = list.filter((x) =>
        get('ancestor')!.some((a) => {
          try {
            return d.images.get(a).id === x.ImageId;
          } catch {
            return false;
          }
        }),
      );
    }
    if (get('volume')) list = list.filter((x) => x.Mounts.some((m) => get('volume')!.includes(m.Name ?? '') || get('volume')!.includes(m.Destination)));
    if (get('before')) {
      const ref = cm.get(get('before')![0]!);
      list = list.filter((x) => x.Seq < ref.Seq);
    }
    if (get('since')) {
      const ref = cm.get(get('since')![0]!);
      list = list.filter((x) => x.Seq > ref.Seq);
    }
    if (limit > 0) list = list.slice(0, limit);
    const withSize = qbool(c.query, 'size');
    c.send(200, list.map((x) => (withSize ? { ...listView(d, x), ...containerSize(cm.dir(x.Id), d.images.byId(x.ImageId)?.size ?? 0) } : listView(d, x))));
  });

  r.post('/containers/create', async (c) => {
    const body = await c.json();
    const res = await cm.create(body, c.query.get('name'));
    c.send(201, res);
  });

  r.post('/containers/prune', async (c) => {
    const filters = parseFilters(c.query);
    const until = filters.get('until')?.[0];
    const untilTs = until ? parseTimestamp(until, 'until') : undefined;
    const labels = filters.get('label') ?? [];
    const res = await cm.prune((x) => {
      if (untilTs !== undefined && Date.parse(x.Created) / 1000 >= untilTs) return false;
      return labelMatch(x.Config.Labels ?? {}, labels);
    });
    c.send(200, res);
  });

  r.get('/containers/{id}/json', (c) => {
    const x = cm.get(c.params[0]!);
    c.send(200, gateContainerInspect(inspectView(d, x, d.execs.idsFor(x.Id)), c.version));
  });

  r.get('/containers/{id}/top', async (c) => c.send(200, await cm.top(c.params[0]!, c.query.get('ps_args') ?? '')));

  r.post('/containers/{id}/start', async (c) => {
    await cm.start(c.params[0]!);
    c.empty(204);
  });

  const stopTimeout = (c: Ctx): number | undefined => {
    const t = c.query.get('t') ?? c.query.get('timeout');
    if (t === null || t === '') return undefined;
    const n = Number(t);
    if (!Number.isInteger(n)) throw new InvalidParameter(`invalid value for "t": ${t}`);
    return n;
  };

  r.post('/containers/{id}/stop', async (c) => {
    await cm.stop(c.params[0]!, stopTimeout(c), c.query.get('signal') ?? undefined);
    c.empty(204);
  });

  r.post('/containers/{id}/restart', async (c) => {
    await cm.restart(c.params[0]!, stopTimeout(c), c.query.get('signal') ?? undefined);
    c.empty(204);
  });

  r.post('/containers/{id}/kill', async (c) => {
    await cm.kill(c.params[0]!, c.query.get('signal') || 'KILL');
    c.empty(204);
  });

  r.post('/containers/{id}/pause', async (c) => {
    await cm.pause(c.params[0]!);
    c.empty(204);
  });

  r.post('/containers/{id}/unpause', async (c) => {
    await cm.unpause(c.params[0]!);
    c.empty(204);
  });

  r.post('/containers/{id}/update', async (c) => c.send(200, await cm.update(c.params[0]!, await c.json())));

  r.post('/containers/{id}/rename', async (c) => {
    await cm.rename(c.params[0]!, c.query.get('name') ?? '');
    c.empty(204);
  });

  r.post('/containers/{id}/resize', (c) => {
    cm.resize(c.params[0]!, Number(c.query.get('h') ?? 0), Number(c.query.get('w') ?? 0));
    c.res.writeHead(200, { 'Content-Type': 'text/plain' });
    c.res.end();
  });

  r.delete('/containers/{id}', async (c) => {
    if (qbool(c.query, 'link')) {
      await cm.removeLink(c.params[0]!);
      c.empty(204);
      return;
    }
    await cm.remove(c.params[0]!, { force: qbool(c.query, 'force'), volumes: qbool(c.query, 'v') });
    c.empty(204);
  });

  // A link's name has a slash (`/linker/alias`): the CLI sends it as it is.
  r.delete('/containers/{*}', async (c) => {
    if (!qbool(c.query, 'link')) throw new NotFound(`No such container: ${c.params[0]!}`);
    await cm.removeLink(c.params[0]!);
    c.empty(204);
  });

  r.post('/containers/{id}/wait', async (c) => {
    const cond = (c.query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(cond)) throw new InvalidParameter(`invalid condition: "${cond}"`);
    const x = cm.get(c.params[0]!);
    const p = cm.wait(x.Id, cond);
    // The CLI sends wait before start and blocks on the headers: send them now.
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    c.res.flushHeaders();
    let gone = false;
    c.res.on('close', () => (gone = true));
    const result = await p;
    if (!gone) c.res.end(JSON.stringify(result) + '\n');
  });

  const attachOpts = (q: URLSearchParams): AttachOptions => {
    const text = q.get('detachKeys');
    const detachKeys = parseDetachKeys(text);
    if (!detachKeys) throw new InvalidParameter(`Invalid detach keys (${text}) provided`);
    return {
      stdin: qbool(q, 'stdin'),
      stdout: qbool(q, 'stdout'),
      stderr: qbool(q, 'stderr'),
      logs: qbool(q, 'logs'),
      stream: qbool(q, 'stream'),
      detachKeys,
    };
  };

  r.post(
    '/containers/{id}/attach',
    async (c) => {
      // Without an Upgrade header Docker answers 200 and streams on the same connection.
      const opts = attachOpts(c.query);
      const x = cm.get(c.params[0]!);
      const sock = c.req.socket;
      c.res.writeHead(200, { 'Content-Type': streamType(x.Config.Tty, c.version) });
      c.res.flushHeaders();
      await runAttach(d, x, resAsDuplex(c.res, sock), Buffer.alloc(0), { ...opts, stdin: false });
    },
    async (h: HijackCtx) => {
      const opts = attachOpts(h.query);
      const x = cm.get(h.params[0]!);
      writeUpgrade(h.socket, streamType(x.Config.Tty, h.version));
      await runAttach(d, x, h.socket, h.head, opts);
    },
  );

  r.get('/containers/{id}/logs', async (c) => {
    const x = cm.get(c.params[0]!);
    // moby's logger.ErrReadLogsNotSupported, a NotImplemented error.
    if (x.HostConfig.LogConfig.Type === 'none') throw new NotImplemented('configured logging driver does not support reading');
    const q = c.query;
    const stdout = qbool(q, 'stdout');
    const stderr = qbool(q, 'stderr');
    if (!stdout && !stderr) throw new InvalidParameter('Bad parameters: you must choose at least one stream');
    const follow = qbool(q, 'follow');
    const timestamps = qbool(q, 'timestamps');
    const since = parseTimestamp(q.get('since'), 'since') ?? 0;
    const until = parseTimestamp(q.get('until'), 'until');
    const tailRaw = q.get('tail') ?? 'all';
    const tail = tailRaw === 'all' || tailRaw === '' ? -1 : Number(tailRaw);
    if (Number.isNaN(tail)) throw new InvalidParameter(`invalid value for "tail": ${tailRaw}`);
    const tty = x.Config.Tty;
    c.res.writeHead(200, { 'Content-Type': streamType(tty, c.version) });
    c.res.flushHeaders();
    const want = (e: LogEntry): boolean =>
      (e.stream === 'stdout' ? stdout : stderr) && e.epoch >= since && (until === undefined || until === 0 || e.epoch <= until);
    const emit = (e: LogEntry): void => {
      if (!want(e)) return;
      const data = timestamps ? Buffer.concat([Buffer.from(e.time + ' '), e.data]) : e.data;
      c.res.write(tty ? data : frame(e.stream === 'stdout' ? 1 : 2, data));
    };
    const { entries, offset } = await readLog(cm.logPath(x.Id));
    // Docker takes the last lines of the log first, then filters them by stream and time: `--tail 2`
    // of a container whose last two lines went to stderr shows no stdout.
    for (const e of tail >= 0 ? (tail === 0 ? [] : entries.slice(-tail)) : entries) emit(e);
    const cur = cm.find(x.Id);
    const active = cur && (cur.State.Status === 'running' || cur.State.Status === 'paused' || cur.State.Status === 'restarting');
    if (!follow || !active || (until !== undefined && until !== 0 && until * 1000 < Date.now())) {
      c.res.end();
      return;
    }
    const follower = new LogFollower(cm.logPath(x.Id), offset, emit);
    follower.start();
    let done = false;
    const finish = async (): Promise<void> => {
      if (done) return;
      await follower.drain();
      done = true;
      follower.stop();
      off();
      c.res.end();
    };
    const off = cm.onNextExit(x.Id, () => {
      // A restart policy brings it back: keep following (Docker follows across restarts).
      setTimeout(() => {
        const now = cm.find(x.Id);
        if (!now || now.State.Status !== 'running') void finish();
      }, 50);
    });
    c.res.on('close', () => {
      done = true;
      follower.stop();
      off();
    });
  });

  const stats = new StatsCollector();
  r.get('/containers/{id}/stats', async (c) => {
    const x = cm.get(c.params[0]!);
    const stream = qbool(c.query, 'stream', true);
    const oneShot = compareVersions(c.version, '1.41') >= 0 && qbool(c.query, 'one-shot');
    if (stream && oneShot) throw new InvalidParameter('cannot have stream=true and one-shot=true');
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    if (stream) c.res.flushHeaders();
    let gone = false;
    c.res.on('close', () => (gone = true));
    // A removed container keeps its last record: the stream goes on with empty frames, as Docker's.
    await stats.run(() => cm.find(x.Id) ?? x, { stream, oneShot }, (f) => void (gone || c.res.write(stringifyJson(f) + '\n')), () => gone);
    c.res.end();
  });
}

/** Lets the non-hijacked attach reuse the hijacked code path over an HTTP response. */
export function resAsDuplex(res: ServerResponse, sock: Duplex): Duplex {
  const proxy = Object.create(sock) as Duplex;
  proxy.write = ((b: Buffer) => res.write(b)) as Duplex['write'];
  proxy.end = (() => {
    res.end();
    return proxy;
  }) as Duplex['end'];
  return proxy;
}
