import { posix } from 'node:path';
import { InvalidParameter } from '../errors.js';
import type { ImageRunConfig } from './image-store.js';

/** Instructions `docker import --change` and `docker commit --change` accept (moby `validCommitCommands`). */
const VALID = new Set(['cmd', 'entrypoint', 'healthcheck', 'env', 'expose', 'label', 'onbuild', 'stopsignal', 'user', 'volume', 'workdir']);

const SIGNALS = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH',
  'XCPU', 'XFSZ',
]);

/** Splits Dockerfile text into logical lines: `\` continues a line, `#` lines are comments. */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (cur === '' && /^\s*(#|$)/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      cur += line.replace(/\\\s*$/, '');
      continue;
    }
    cur += line;
    out.push(cur.trim());
    cur = '';
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function envLookup(env: string[], name: string): string | undefined {
  for (let i = env.length - 1; i >= 0; i--) {
    const e = env[i]!;
    const eq = e.indexOf('=');
    if ((eq < 0 ? e : e.slice(0, eq)) === name) return eq < 0 ? '' : e.slice(eq + 1);
  }
  return undefined;
}

/**
 * Dockerfile word processing: splits on unquoted blanks, removes quotes, honours `\` escapes and
 * expands `$VAR`, `${VAR}`, `${VAR:-def}`, `${VAR:+alt}` from `env`.
 */
export function shellWords(input: string, env: string[]): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const expand = (): string => {
    // At a `$`.
    i++;
    if (input[i] === '{') {
      const end = input.indexOf('}', i);
      if (end < 0) throw new InvalidParameter(`missing '}' in ${input}`);
      const body = input.slice(i + 1, end);
      i = end + 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?$/.exec(body);
      if (!m) throw new InvalidParameter(`unsupported modifier in \${${body}}`);
      const val = envLookup(env, m[1]!);
      if (m[2] === '-') return val ? val : m[3]!;
      if (m[2] === '+') return val ? m[3]! : '';
      return val ?? '';
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(input.slice(i));
    if (!m) return '$';
    i += m[0].length;
    return envLookup(env, m[0]) ?? '';
  };
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === '\\') {
      cur += input[i + 1] ?? '';
      i += 2;
    } else if (c === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) throw new InvalidParameter(`unexpected end of statement while looking for matching single-quote`);
      cur += input.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      while (i < input.length && input[i] !== '"') {
        if (input[i] === '\\' && i + 1 < input.length && '"\\$'.includes(input[i + 1]!)) {
          cur += input[i + 1];
          i += 2;
        } else if (input[i] === '$') cur += expand();
        else cur += input[i++];
      }
      if (input[i] !== '"') throw new InvalidParameter(`unexpected end of statement while looking for matching double-quote`);
      i++;
    } else if (c === '$') {
      cur += expand();
    } else {
      cur += c;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** `["a","b"]` → the strings, or undefined when the text is not a JSON string array (shell form). */
function jsonArray(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(rest) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    /* shell form */
  }
  return undefined;
}

function keyValues(instr: string, rest: string, env: string[]): [string, string][] {
  const words = shellWords(rest, env);
  if (words.length === 0) throw new InvalidParameter(`${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    // Legacy `ENV key value with spaces` form: one pair, the value is the rest of the line.
    const m = /^(\S+)\s+([\s\S]*)$/.exec(rest);
    if (!m) throw new InvalidParameter(`${instr} must have two arguments`);
    return [[shellWords(m[1]!, env).join(''), shellWords(m[2]!, env).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidParameter(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function parsePortSpec(spec: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/([a-zA-Z]+))?$/.exec(spec);
  if (!m) throw new InvalidParameter(`invalid containerPort: ${spec.split('/')[0]}`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new InvalidParameter(`invalid proto: ${proto}`);
  const start = Number(m[1]);
  const end = m[2] ? Number(m[2]) : start;
  if (start > 65535 || end > 65535 || end < start) throw new InvalidParameter(`invalid containerPort: ${spec}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

function parseDuration(s: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const scale: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * scale[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== s.length || s === '') throw new InvalidParameter(`time: invalid duration "${s}" for --${flag}`);
  return Math.round(total);
}

function shellForm(rest: string): string[] {
  return ['/bin/sh', '-c', rest];
}

/**
 * Applies `--change` Dockerfile instructions to an image run config, as Docker's
 * `BuildFromConfig` does for import and commit. Throws InvalidParameter with Docker's wording
 * for an instruction it does not accept.
 */
export function applyChanges(base: ImageRunConfig, changes: string[]): ImageRunConfig {
  const cfg: ImageRunConfig = structuredClone(base);
  if (changes.length === 0) return cfg;
  const lines = logicalLines(changes.join('\n'));
  const parsed = lines.map((line) => {
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    return { instr: m[1]!.toLowerCase(), rest: m[2]!.trim() };
  });
  for (const { instr } of parsed) {
    if (!VALID.has(instr)) throw new InvalidParameter(`${instr} is not a valid change command`);
  }
  let cmdSet = false;
  for (const { instr, rest } of parsed) {
    const env = cfg.Env ?? [];
    const upper = instr.toUpperCase();
    switch (instr) {
      case 'cmd': {
        if (rest === '') throw new InvalidParameter('CMD requires at least one argument');
        cfg.Cmd = jsonArray(rest) ?? shellForm(rest);
        cmdSet = true;
        break;
      }
      case 'entrypoint': {
        if (rest === '') throw new InvalidParameter('ENTRYPOINT requires at least one argument');
        const arr = jsonArray(rest);
        cfg.Entrypoint = arr ?? shellForm(rest);
        // Docker: an ENTRYPOINT resets a CMD inherited from before (not one set alongside it).
        if (!cmdSet) cfg.Cmd = null;
        break;
      }
      case 'env': {
        const list = [...env];
        for (const [k, v] of keyValues(upper, rest, env)) {
          const idx = list.findIndex((e) => e.split('=')[0] === k);
          if (idx >= 0) list[idx] = `${k}=${v}`;
          else list.push(`${k}=${v}`);
        }
        cfg.Env = list;
        break;
      }
      case 'label': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of keyValues(upper, rest, env)) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'expose': {
        const words = shellWords(rest, env);
        if (words.length === 0) throw new InvalidParameter('EXPOSE requires at least one argument');
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const w of words) for (const p of parsePortSpec(w)) ports[p] = {};
        cfg.ExposedPorts = ports;
        break;
      }
      case 'user': {
        const words = shellWords(rest, env);
        if (words.length !== 1) throw new InvalidParameter('USER requires exactly one argument');
        cfg.User = words[0]!;
        break;
      }
      case 'workdir': {
        const words = shellWords(rest, env);
        if (words.length !== 1) throw new InvalidParameter('WORKDIR requires exactly one argument');
        const w = words[0]!;
        cfg.WorkingDir = w.startsWith('/') ? posix.normalize(w) : posix.join('/', cfg.WorkingDir ?? '', w);
        break;
      }
      case 'volume': {
        const vols = jsonArray(rest) ?? shellWords(rest, env);
        if (vols.length === 0) throw new InvalidParameter('VOLUME requires at least one argument');
        const map = { ...(cfg.Volumes ?? {}) };
        for (const v of vols) {
          if (v.trim() === '') throw new InvalidParameter('VOLUME specified can not be an empty string');
          map[v.trim()] = {};
        }
        cfg.Volumes = map;
        break;
      }
      case 'stopsignal': {
        const words = shellWords(rest, env);
        if (words.length !== 1) throw new InvalidParameter('STOPSIGNAL requires exactly one argument');
        const sig = words[0]!;
        const name = sig.toUpperCase().replace(/^SIG/, '');
        const num = /^\d+$/.test(sig) ? Number(sig) : NaN;
        if (!SIGNALS.has(name) && !(num > 0 && num <= 64) && !/^RTMIN|^RTMAX/.test(name)) {
          throw new InvalidParameter(`Invalid signal: ${sig}`);
        }
        cfg.StopSignal = sig;
        break;
      }
      case 'onbuild': {
        const m = /^(\S+)/.exec(rest);
        if (!m) throw new InvalidParameter('ONBUILD requires at least one argument');
        const trigger = m[1]!.toUpperCase();
        if (trigger === 'ONBUILD') throw new InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (trigger === 'FROM' || trigger === 'MAINTAINER') {
          throw new InvalidParameter(`${trigger} isn't allowed as an ONBUILD trigger`);
        }
        cfg.OnBuild = [...(cfg.OnBuild ?? []), `${trigger}${rest.slice(m[1]!.length)}`];
        break;
      }
      case 'healthcheck': {
        cfg.Healthcheck = parseHealthcheck(rest);
        break;
      }
    }
  }
  return cfg;
}

function parseHealthcheck(rest: string): Record<string, unknown> {
  let text = rest;
  const hc: Record<string, unknown> = {};
  const flags: Record<string, string> = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' };
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s*/.exec(text);
    if (!m) break;
    text = text.slice(m[0].length);
    const [, flag, value] = m;
    if (flag === 'retries') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new InvalidParameter(`invalid retries value: ${value}`);
      hc.Retries = n;
    } else if (flags[flag!]) hc[flags[flag!]!] = parseDuration(value!, flag!);
    else throw new InvalidParameter(`Unknown flag: ${flag}`);
  }
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text);
  if (!m) throw new InvalidParameter('HEALTHCHECK requires at least one argument');
  const kind = m[1]!.toUpperCase();
  if (kind === 'NONE') {
    if (m[2] || Object.keys(hc).length) throw new InvalidParameter('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw new InvalidParameter(`Unknown type "${kind}" in HEALTHCHECK (try CMD)`);
  const arr = jsonArray(m[2]!);
  hc.Test = arr ? ['CMD', ...arr] : ['CMD-SHELL', m[2]!];
  return hc;
}
