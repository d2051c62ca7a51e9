import type { Duplex } from 'node:stream';
import type { Daemon } from '../daemon.js';
import type { ContainerRecord } from './container-record.js';
import { LogFollower, frame, readLog, type LogEntry } from './log-file.js';
import { StdinRelay } from './stdin-relay.js';
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
  if (opts.logs) {
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
  const pending: Buffer[] = input.length ? [input] : [];
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
  socket.on('close', () => {
    ended = true;
    follower.stop();
    relay?.kill();
    offExit();
    offStart();
  });
  if (wantStdin) {
    socket.on('data', (b: Buffer) => (relay ? relay.write(b) : pending.push(b)));
    socket.on('end', () => {
      inputEnded = true;
      relay?.end();
    });
    socket.resume();
  } else {
    socket.on('data', () => {});
    socket.resume();
  }
}
