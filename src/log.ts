/** Named loggers per component (`arca:net:bridge`), levels from `--log-level`. */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

let threshold: number = LEVELS.info;

export function setLogLevel(level: string): void {
  if (!(level in LEVELS)) throw new Error(`invalid log level "${level}" (debug, info, warn, error)`);
  threshold = LEVELS[level as LogLevel];
}

export interface Logger {
  debug(msg: string, extra?: Record<string, unknown>): void;
  info(msg: string, extra?: Record<string, unknown>): void;
  warn(msg: string, extra?: Record<string, unknown>): void;
  error(msg: string, extra?: Record<string, unknown>): void;
}

export function logger(name: string): Logger {
  const emit = (level: LogLevel, msg: string, extra?: Record<string, unknown>): void => {
    if (LEVELS[level] < threshold) return;
    const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${name}: ${msg}${
      extra ? ' ' + JSON.stringify(extra) : ''
    }\n`;
    process.stderr.write(line);
  };
  return {
    debug: (m, e) => emit('debug', m, e),
    info: (m, e) => emit('info', m, e),
    warn: (m, e) => emit('warn', m, e),
    error: (m, e) => emit('error', m, e),
  };
}
