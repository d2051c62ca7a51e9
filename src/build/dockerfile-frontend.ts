import { InvalidParameter } from '../errors.js';

/**
 * What arca must know of a Dockerfile before buildah reads it: that it parses (to answer with
 * Docker's messages rather than buildah's), and which images its stages start from or copy from,
 * so they can be handed from arca's image store to buildah's before the build.
 */

/** One instruction, continuation lines joined. */
export interface Instruction {
  /** Upper-case keyword: `FROM`, `RUN`, ... */
  keyword: string;
  /** The rest of the line, as written. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

/** One `FROM`, after build-arg substitution. */
export interface Stage {
  /** The image or earlier stage it starts from (`scratch` for none). */
  base: string;
  /** `AS name`, lower-cased; undefined when unnamed. */
  name?: string;
  /** `--platform=...` of the FROM, if any. */
  platform?: string;
}

/** The parsed Dockerfile as arca needs it. */
export interface DockerfileSummary {
  instructions: Instruction[];
  stages: Stage[];
  /** Images named by `FROM` or `COPY --from` that are not stages (never `scratch`), in order, once each. */
  images: string[];
  /** Count of instructions from the target stage back: what Docker's `Step n/m` counts. */
  steps: number;
}

const KEYWORDS = new Set([
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
  'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
]);

function parseError(line: number, msg: string): InvalidParameter {
  // The text of BuildKit's parser, which the classic builder of Docker 23+ uses.
  return new InvalidParameter(`dockerfile parse error on line ${line}: ${msg}`);
}

/** Splits a Dockerfile into instructions, honouring the `escape` directive, comments and continuations. */
export function parseDockerfile(text: string): Instruction[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  // Parser directives: only at the very top, before any instruction, comment or blank line.
  for (; i < lines.length; i++) {
    const m = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/.exec(lines[i]!);
    if (!m) break;
    if (m[1]!.toLowerCase() === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw parseError(i + 1, `invalid escape token '${m[2]}' does not match ${'`'} or \\`);
      escape = m[2]!;
    }
  }
  const out: Instruction[] = [];
  let current: { text: string; line: number } | null = null;
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!;
    const trimmed = raw.trim();
    if (current === null) {
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      current = { text: '', line: n + 1 };
    } else if (trimmed.startsWith('#')) {
      continue; // comment lines inside a continued instruction are dropped
    }
    const cont = trimmed.endsWith(escape) && !trimmed.endsWith(escape + escape);
    const piece = cont ? trimmed.slice(0, -1).trimEnd() : trimmed;
    current.text += (current.text && piece ? ' ' : '') + piece;
    if (cont && n < lines.length - 1) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(current.text.trim());
    if (m) {
      const keyword = m[1]!.toUpperCase();
      if (!KEYWORDS.has(keyword)) throw parseError(current.line, `unknown instruction: ${m[1]}`);
      out.push({ keyword, args: m[2]!.trim(), line: current.line });
    }
    current = null;
  }
  return out;
}

/** Shell-style `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` with the given values. */
export function expandArgs(s: string, vars: Map<string, string>): string {
  return s.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, braced, op, word, bare) => {
    const name = (braced ?? bare) as string;
    const v = vars.get(name);
    if (op === '-') return v ? v : (word as string);
    if (op === '+') return v ? (word as string) : '';
    return v ?? '';
  });
}

function argDefault(args: string): [string, string | undefined] {
  const eq = args.indexOf('=');
  if (eq < 0) return [args.trim(), undefined];
  return [args.slice(0, eq).trim(), args.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1')];
}

/**
 * Parses and summarises a Dockerfile. `buildArgs` are the request's `buildargs`; `target` the
 * stage to stop at (Docker's "failed to reach build target" when it is not there).
 */
export function summarizeDockerfile(text: string, buildArgs: Record<string, string | null>, target?: string): DockerfileSummary {
  const instructions = parseDockerfile(text);
  if (instructions.length === 0) throw new InvalidParameter('the Dockerfile (Dockerfile) cannot be empty');
  const globals = new Map<string, string>();
  const stages: Stage[] = [];
  const copyFrom: string[][] = [];
  const stageStart: number[] = [];
  let seenFrom = false;
  instructions.forEach((ins, idx) => {
    if (ins.keyword === 'ARG' && !seenFrom) {
      for (const part of ins.args.split(/\s+/).filter(Boolean)) {
        const [name, dflt] = argDefault(part);
        const given = buildArgs[name];
        const v = given ?? dflt;
        if (v !== undefined) globals.set(name, v);
      }
      return;
    }
    if (ins.keyword === 'FROM') {
      seenFrom = true;
      const words = ins.args.split(/\s+/).filter(Boolean);
      let platform: string | undefined;
      while (words[0]?.startsWith('--')) {
        const flag = words.shift()!;
        const m = /^--platform=(.*)$/.exec(flag);
        if (m) platform = expandArgs(m[1]!, globals);
        else throw parseError(ins.line, `unknown flag: ${flag.replace(/=.*$/, '')}`);
      }
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toLowerCase() === 'as')) {
        throw parseError(ins.line, 'FROM requires either one or three arguments');
      }
      const base = expandArgs(words[0]!, globals);
      if (!base) throw new InvalidParameter(`base name (${words[0]}) should not be blank`);
      stages.push({ base, name: words[2]?.toLowerCase(), platform });
      stageStart.push(idx);
      copyFrom.push([]);
      return;
    }
    if (!seenFrom) throw new InvalidParameter('no build stage in current context');
    if (ins.keyword === 'COPY' || (ins.keyword === 'ADD' && /--from=/.test(ins.args))) {
      const m = /(?:^|\s)--from=(\S+)/.exec(ins.args);
      if (m) copyFrom[copyFrom.length - 1]!.push(m[1]!);
    }
  });
  if (!seenFrom) throw new InvalidParameter('no build stage in current context');

  let last = stages.length - 1;
  if (target) {
    last = stages.findIndex((s) => s.name === target.toLowerCase());
    if (last < 0) throw new InvalidParameter(`failed to reach build target ${target} in Dockerfile`);
  }
  const names = new Set<string>();
  const images: string[] = [];
  const addImage = (ref: string): void => {
    if (ref.toLowerCase() === 'scratch' || images.includes(ref)) return;
    images.push(ref);
  };
  for (let s = 0; s <= last; s++) {
    const st = stages[s]!;
    if (!names.has(st.base.toLowerCase())) addImage(st.base);
    for (const ref of copyFrom[s]!) {
      if (/^\d+$/.test(ref) || names.has(ref.toLowerCase())) continue;
      addImage(ref);
    }
    if (st.name) names.add(st.name);
  }
  const end = last + 1 < stageStart.length ? stageStart[last + 1]! : instructions.length;
  return { instructions, stages, images, steps: end };
}
