import { InvalidParameter } from '../errors.js';

/** The log drivers this daemon has: Docker's default, and the one that keeps nothing. */
export const LOG_DRIVERS = ['json-file', 'none'] as const;

/** `HostConfig.LogConfig` as stored and inspected. */
export interface LogConfig {
  Type: string;
  Config: Record<string, string>;
}

/** How big the log may grow: rotate past `maxSize` bytes, keeping `maxFile` files in all. */
export interface LogLimits {
  maxSize: number;
  maxFile: number;
}

/** Options moby's json-file driver knows (daemon/logger/jsonfilelog `ValidateLogOpt`). */
const JSON_FILE_OPTS = ['max-file', 'max-size', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag'];
/** Options every driver takes (moby `logger.ValidateLogOpts`). */
const GENERIC_OPTS = ['mode', 'max-buffer-size'];

const DECIMAL: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

/** go-units `FromHumanSize`, which json-file uses for `max-size`: decimal units, `10m` is 10,000,000. */
export function fromHumanSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$/i.exec(v);
  if (!m) throw new InvalidParameter(`invalid size: '${v}'`);
  return Math.floor(Number(m[1]) * DECIMAL[m[2]!.toLowerCase()]!);
}

/**
 * Reads `HostConfig.LogConfig`: an empty type is the default `json-file`; an unknown driver or
 * option, or a bad size, is refused with moby's words before anything is created.
 */
export function parseLogConfig(raw: unknown): LogConfig {
  const o = (raw && typeof raw === 'object' && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
  const type = typeof o['Type'] === 'string' && o['Type'] ? o['Type'] : 'json-file';
  const cfgIn = o['Config'];
  if (cfgIn !== undefined && cfgIn !== null && (typeof cfgIn !== 'object' || Array.isArray(cfgIn))) {
    throw new InvalidParameter('json: cannot unmarshal into Go struct field LogConfig.HostConfig.LogConfig.Config of type map[string]string');
  }
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries((cfgIn ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new InvalidParameter(`json: cannot unmarshal ${typeof v} into Go struct field LogConfig.HostConfig.LogConfig.Config of type string`);
    config[k] = v;
  }
  const cfg = { Type: type, Config: config };
  if (type === 'none') return cfg;
  const mode = config['mode'] ?? '';
  if (!['', 'blocking', 'non-blocking'].includes(mode)) throw new InvalidParameter(`logger: logging mode not supported: ${mode}`);
  if (config['max-buffer-size'] !== undefined && mode !== 'non-blocking') {
    throw new InvalidParameter(`logger: max-buffer-size option is only supported with 'mode=non-blocking'`);
  }
  if (!(LOG_DRIVERS as readonly string[]).includes(type)) throw new InvalidParameter(`logger: no log driver named '${type}' is registered`);
  for (const k of Object.keys(config)) {
    if (!GENERIC_OPTS.includes(k) && !JSON_FILE_OPTS.includes(k)) throw new InvalidParameter(`unknown log opt '${k}' for json-file log driver`);
  }
  logLimits(cfg);
  return cfg;
}

/** The rotation a json-file config asks for, undefined when the log may grow without bound. */
export function logLimits(cfg: LogConfig): LogLimits | undefined {
  if (cfg.Type !== 'json-file') return undefined;
  const size = cfg.Config['max-size'];
  const files = cfg.Config['max-file'];
  let maxFile = 1;
  if (files !== undefined) {
    if (!/^[+-]?\d+$/.test(files)) throw new InvalidParameter(`strconv.Atoi: parsing ${JSON.stringify(files)}: invalid syntax`);
    maxFile = Number(files);
    if (maxFile < 1) throw new InvalidParameter('max-file cannot be less than 1');
  }
  if (size === undefined) return undefined;
  const maxSize = fromHumanSize(size);
  if (maxSize <= 0) throw new InvalidParameter('max-size must be a positive number');
  return { maxSize, maxFile };
}
