import type { Duplex } from 'node:stream';
import type { Daemon } from '../daemon.js';
import type { ContainerRecord } from './container-record.js';
import { LogFollower, frame, readLog, type LogEntry } from './log-file.js';
import { StdinRelay } from './stdin-relay.js';
import { DEFAULT_DETACH_KEYS, relayInput } from './detach-keys.js';
import { logger } from '../log.js';
import { statSync } from 'node:fs';

const log = logger('arca:attach');

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Replay the log first (`logs=1`). */
  logs: boolean;
  /** Keep streaming (`stream=1`). */
  stream: boolean;
  /** The parsed `detachKeys` (default ctrl-p ctrl-q); they apply to containers with a terminal, as in moby. */
  detachKeys?: Buffer;
}

/**
 * One attached client: output comes from the container's log file (conmon writes it as the
 * process prints), stdin goes to conmon's attach socket. Ends after the container's next exit,
 * once the log is drained.
 */
export async function runAttach(d: Daemon, c: ContainerRecord, socket: Duplex, input: Buffer, opts: AttachOptions): Promise<void> {
  d.events.container('attach', c);
  const tty = c.Config.Tty;
  const path = d.containers.logPath(c.Id);
  let ended = false;
  const send = (e: LogEntry): void => {
    if (ended) return;
    if (e.stream === 'stdout' && !opts.stdout) return;
    if (e.stream === 'stderr' && !opts.stderr) return;
    socket.write(tty ? e.data : frame(e.stream === 'stdout' ? 1 : 2, e.data));
  };
  let offset = 0;
  try {
    offset = statSync(path).size;
  } catch {
    /* empty */
  }
  // Driver `none` keeps no log to replay.
  if (opts.logs && c.HostConfig.LogConfig.Type !== 'none') {
    const all = await readLog(path);
    for (const e of all.entries) send(e);
    offset = all.offset;
  }
  const st = c.State.Status;
  // A stopped container's streams are still there: `docker start -a` attaches, then starts it,
  // and the session ends at the exit of that run (Docker).
  const active = st === 'running' || st === 'paused' || st === 'created' || st === 'restarting' || st === 'exited';
  if (!opts.stream || !active) {
    socket.end();
    return;
  }
  // conmon (and its attach socket) exists only once the container started: `docker run -i`
  // attaches before start, so stdin is held until then.
  let relay: StdinRelay | undefined;
  const pending: Buffer[] = [];
  let inputEnded = false;
  const wantStdin = opts.stdin && c.Config.OpenStdin;
  const connect = (): void => {
    if (ended || relay) return;
    try {
      relay = new StdinRelay(d.containers.attachDir(c.Id));
    } catch (e) {
      log.warn('stdin relay failed', { error: String(e) });
      return;
    }
    for (const b of pending.splice(0)) relay.write(b);
    if (inputEnded) relay.end();
  };
  let offStart = (): void => {};
  if (wantStdin) {
    if (st === 'running') connect();
    else offStart = d.containers.onNextStart(c.Id, connect);
  }
  const follower = new LogFollower(path, offset, send);
  follower.start();
  const finish = async (): Promise<void> => {
    if (ended) return;
    await follower.drain();
    ended = true;
    follower.stop();
    relay?.kill();
    offExit();
    offStart();
    socket.end();
  };
  const offExit = d.containers.onNextExit(c.Id, () => void finish());
  // Detaching ends this session only: the container's stdin stays open (a terminal's always does).
  const detach = (): void => {
    ended = true;
    follower.stop();
    offExit();
    offStart();
    socket.end();
    log.debug('detached', { id: c.Id.slice(0, 12) });
  };
  socket.on('close', () => {
    ended = true;
    follower.stop();
    relay?.kill();
    offExit();
    offStart();
  });
  if (wantStdin) {
    const sink = {
      write: (b: Buffer): void => {
        if (relay) relay.write(b);
        else pending.push(b);
      },
      end: (): void => {
        inputEnded = true;
        relay?.end();
      },
    };
    relayInput(socket, input, tty ? (opts.detachKeys ?? DEFAULT_DETACH_KEYS) : undefined, sink, detach);
    socket.resume();
  } else {
    socket.on('data', () => {});
    socket.resume();
  }
}
