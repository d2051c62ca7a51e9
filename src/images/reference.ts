import { InvalidParameter } from '../errors.js';

/**
 * A Docker image reference, normalised the way distribution/reference does it:
 * `busybox` is `docker.io/library/busybox`, `localhost:5000/a/b` keeps its domain.
 */
export interface ImageReference {
  /** Registry host (and port): `docker.io`, `127.0.0.1:5000`, `localhost`. */
  domain: string;
  /** Repository path inside the registry: `library/busybox`, `a/b`. */
  path: string;
  tag?: string;
  /** `sha256:<hex>` */
  digest?: string;
}

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

// The grammar of distribution/reference (regexp.go), transcribed into JS regexps.
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_AND_PORT = `(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?`;
const NAME = `(?:${DOMAIN_AND_PORT}/)?${REMOTE_NAME}`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';

const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_NAME_RE = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;

export const ERR_REFERENCE_FORMAT = 'invalid reference format';

/** Is `s` a bare 64-hex image id? */
export function isIdentifier(s: string): boolean {
  return IDENTIFIER_RE.test(s);
}

/** Is `s` a valid tag (`[\w][\w.-]{0,127}`)? */
export function isValidTag(s: string): boolean {
  return TAG_RE.test(s);
}

/**
 * Validates a digest as go-digest does for the algorithms Docker registers. Returns the digest or
 * throws InvalidParameter with go-digest's wording.
 */
export function parseDigest(s: string): string {
  const m = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(s);
  if (!m) throw new InvalidParameter('invalid checksum digest format');
  const [, alg, hex] = m;
  const lengths: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
  const want = lengths[alg!];
  if (want === undefined) throw new InvalidParameter('unsupported digest algorithm');
  if (hex!.length !== want) throw new InvalidParameter('invalid checksum digest length');
  if (!/^[a-f0-9]+$/.test(hex!)) throw new InvalidParameter('invalid checksum digest format');
  return s;
}

/** distribution/reference's `Parse` on an already domain-qualified string. */
function parseStrict(s: string): ImageReference {
  if (s === '') throw new InvalidParameter('repository name must have at least one component');
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    const lower = s.toLowerCase();
    if (lower !== s && REFERENCE_RE.test(lower)) throw new InvalidParameter('repository name must be lowercase');
    throw new InvalidParameter(ERR_REFERENCE_FORMAT);
  }
  const nm = ANCHORED_NAME_RE.exec(m[1]!);
  const domain = nm?.[1] ?? '';
  const path = nm ? nm[2]! : m[1]!;
  if (path.length > MAX_NAME_LENGTH) {
    throw new InvalidParameter(`repository name must not be more than ${MAX_NAME_LENGTH} characters`);
  }
  const ref: ImageReference = { domain, path };
  if (m[2]) ref.tag = m[2];
  if (m[3]) ref.digest = parseDigest(m[3]);
  return ref;
}

/** Splits a familiar name into registry domain and remote name, as `splitDockerDomain` does. */
function splitDockerDomain(name: string): [string, string] {
  const slash = name.indexOf('/');
  if (slash < 0) return [DEFAULT_DOMAIN, OFFICIAL_PREFIX + name];
  const maybeDomain = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remote: string;
  if (maybeDomain === LEGACY_DEFAULT_DOMAIN) {
    [domain, remote] = [DEFAULT_DOMAIN, rest];
  } else if (maybeDomain === 'localhost' || /[.:]/.test(maybeDomain) || maybeDomain.toLowerCase() !== maybeDomain) {
    [domain, remote] = [maybeDomain, rest];
  } else {
    [domain, remote] = [DEFAULT_DOMAIN, name];
  }
  if (domain === DEFAULT_DOMAIN && !remote.includes('/')) remote = OFFICIAL_PREFIX + remote;
  return [domain, remote];
}

/**
 * Parses a user-supplied name (`busybox`, `busybox:1`, `127.0.0.1:5000/a/b@sha256:...`) into its
 * normalised form. Throws InvalidParameter with Docker's messages (`invalid reference format`, ...).
 */
export function parseNormalizedNamed(s: string): ImageReference {
  if (IDENTIFIER_RE.test(s)) {
    throw new InvalidParameter(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const colon = remainder.indexOf(':');
  const remote = colon >= 0 ? remainder.slice(0, colon) : remainder;
  if (remote.toLowerCase() !== remote) {
    throw new InvalidParameter(`invalid reference format: repository name (${remote}) must be lowercase`);
  }
  return parseStrict(`${domain}/${remainder}`);
}

/**
 * The reference a new tag gets from `repo` and `tag` (`docker tag`, `import`, `commit`): a
 * repository, maybe with its tag, never a digest; no tag means `latest`.
 */
export function tagReference(repo: string, tag?: string | null): ImageReference {
  const ref = parseNormalizedNamed(repo);
  if (ref.digest) throw new InvalidParameter('refusing to create a tag with a digest reference');
  if (tag) {
    if (!isValidTag(tag)) throw new InvalidParameter('invalid tag format');
    ref.tag = tag;
  }
  ref.tag ??= 'latest';
  return ref;
}

/** Adds `:latest` when a reference has neither tag nor digest. */
export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag || ref.digest ? ref : { ...ref, tag: DEFAULT_TAG };
}

/** `docker.io/library/busybox` */
export function fullName(ref: ImageReference): string {
  return ref.domain ? `${ref.domain}/${ref.path}` : ref.path;
}

/** `busybox`, `user/app`, `127.0.0.1:5000/x`: the name as Docker's UI prints it. */
export function familiarName(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return fullName(ref);
  if (ref.path.startsWith(OFFICIAL_PREFIX)) {
    const rest = ref.path.slice(OFFICIAL_PREFIX.length);
    if (!rest.includes('/')) return rest;
  }
  return ref.path;
}

function suffix(ref: ImageReference): string {
  return (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** The full normalised string: `docker.io/library/busybox:latest`. Used as the stored key. */
export function referenceString(ref: ImageReference): string {
  return fullName(ref) + suffix(ref);
}

/** The familiar string: `busybox:latest`, `127.0.0.1:5000/x@sha256:...`. */
export function familiarString(ref: ImageReference): string {
  return familiarName(ref) + suffix(ref);
}

/**
 * Parses a stored (fully normalised) reference string back into parts; never throws for strings
 * this module produced.
 */
export function parseStored(s: string): ImageReference {
  return parseStrict(s);
}

/**
 * Docker's `reference.FamiliarMatch`: glob-matches a pattern against the familiar string of a
 * reference, and against its familiar name alone (so `busybox` matches `busybox:latest`).
 */
export function familiarMatch(pattern: string, ref: ImageReference): boolean {
  const re = globToRegExp(pattern);
  if (re.test(familiarString(ref))) return true;
  return re.test(familiarName(ref));
}

/** Go's `path.Match` semantics: `*` and `?` never cross `/`; `[...]` classes. */
function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new InvalidParameter('syntax error in pattern');
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '!' + cls.slice(1);
      out += cls.startsWith('!') ? `[^${cls.slice(1).replace(/\\/g, '\\\\')}]` : `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      out += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** Docker's `stringid.TruncateID`: the first 12 hex digits of an id or digest. */
export function shortIdOfDigest(d: string): string {
  return d.slice(d.indexOf(':') + 1).slice(0, 12);
}
