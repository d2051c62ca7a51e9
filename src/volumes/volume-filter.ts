import { InvalidParameter } from '../errors.js';
import { goQuote } from './volume-name.js';

/** What a filter predicate sees of one volume. */
export interface FilterableVolume {
  Name: string;
  Driver: string;
  Labels: Record<string, string> | null;
  /** Whether some container uses the volume. */
  inUse: boolean;
}

/** Filters `GET /volumes` accepts. */
export const LIST_FILTERS = ['dangling', 'name', 'driver', 'label'] as const;
/** Filters `POST /volumes/prune` accepts. */
export const PRUNE_FILTERS = ['label', 'label!', 'all'] as const;

/** Docker's `invalid filter 'key'` / `invalid filter 'key=v1,v2'`. */
function invalidFilter(key: string, values?: string[]): InvalidParameter {
  return new InvalidParameter(`invalid filter '${key}${values ? '=' + values.join(',') : ''}'`);
}

/** Rejects any filter key outside `accepted`, as Docker's `filters.Args.Validate`. */
export function validateFilterKeys(filters: Map<string, string[]>, accepted: readonly string[]): void {
  for (const key of filters.keys()) if (!accepted.includes(key)) throw invalidFilter(key);
}

/**
 * Docker's `MatchKVList`: every `key` or `key=value` term must be present in `labels`.
 * No terms match everything; terms against no labels match nothing.
 */
export function matchLabels(terms: readonly string[] | undefined, labels: Record<string, string> | null): boolean {
  if (!terms || terms.length === 0) return true;
  if (!labels || Object.keys(labels).length === 0) return false;
  for (const term of terms) {
    const eq = term.indexOf('=');
    const key = eq < 0 ? term : term.slice(0, eq);
    if (!Object.prototype.hasOwnProperty.call(labels, key)) return false;
    if (eq >= 0 && labels[key] !== term.slice(eq + 1)) return false;
  }
  return true;
}

/**
 * Docker's `Args.Match`: a term matches when it equals the value or, read as a regular
 * expression, matches anywhere in it (so `name=web` matches `myweb1`). Terms that do not
 * compile are skipped, as Go skips them.
 */
export function matchPattern(terms: readonly string[], value: string): boolean {
  for (const term of terms) {
    if (term === value) return true;
    let re: RegExp;
    try {
      re = new RegExp(term);
    } catch {
      continue;
    }
    if (re.test(value)) return true;
  }
  return false;
}

/** Docker's `GetBoolOrDefault` for `dangling`: `true`/`1` or `false`/`0`, never both. */
export function parseBoolFilter(filters: Map<string, string[]>, key: string): boolean | undefined {
  const values = filters.get(key);
  if (values === undefined) return undefined;
  const lower = values.map((v) => v.toLowerCase());
  const isTrue = lower.includes('true') || lower.includes('1');
  const isFalse = lower.includes('false') || lower.includes('0');
  if (isTrue === isFalse) throw invalidFilter(key, values);
  return isTrue;
}

/** Go's `strconv.ParseBool`, for the prune filter `all`. */
function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/**
 * Builds the predicate of `docker volume ls --filter ...`. Unknown keys and bad `dangling`
 * values throw InvalidParameter with Docker's message.
 */
export function listPredicate(filters: Map<string, string[]>): (v: FilterableVolume) => boolean {
  validateFilterKeys(filters, LIST_FILTERS);
  const drivers = filters.get('driver');
  const names = filters.get('name');
  const labels = filters.get('label');
  const dangling = parseBoolFilter(filters, 'dangling');
  return (v) =>
    (!drivers || drivers.length === 0 || drivers.includes(v.Driver)) &&
    (!names || names.length === 0 || matchPattern(names, v.Name)) &&
    matchLabels(labels, v.Labels) &&
    (dangling === undefined || v.inUse !== dangling);
}

/**
 * Builds the predicate of `docker volume prune --filter ...` over unused local volumes. Since API
 * 1.42 only anonymous volumes are pruned unless the filter `all=true` is given (`allByDefault`
 * is how older API versions ask for the old behaviour).
 */
export function prunePredicate(
  filters: Map<string, string[]>,
  anonymousLabel: string,
  allByDefault = false,
): (v: FilterableVolume) => boolean {
  const allValues = filters.get('all') ?? (allByDefault ? ['true'] : []);
  let all = false;
  if (allValues.length > 1) {
    throw new InvalidParameter(`invalid filter 'all=[${allValues.join(' ')}]': only one value is expected`);
  }
  if (allValues.length === 1) {
    const parsed = parseGoBool(allValues[0]!);
    if (parsed === undefined) {
      throw new InvalidParameter(`invalid filter 'all': strconv.ParseBool: parsing ${goQuote(allValues[0]!)}: invalid syntax`);
    }
    all = parsed;
  }
  validateFilterKeys(filters, PRUNE_FILTERS);
  const labels = [...(filters.get('label') ?? []), ...(all ? [] : [anonymousLabel])];
  const notLabels = filters.get('label!');
  return (v) =>
    !v.inUse &&
    v.Driver === 'local' &&
    matchLabels(labels, v.Labels) &&
    (!notLabels || notLabels.length === 0 || !matchLabels(notLabels, v.Labels));
}
