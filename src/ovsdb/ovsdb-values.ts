/**
 * The OVSDB wire encoding (RFC 7047 §5.1) as TypeScript types, with helpers to build and decode
 * values. Atoms are plain JSON scalars or tagged pairs (`["uuid", u]`); sets and maps are tagged
 * arrays. The server sends a set of exactly one element as the bare element, so the decoders take
 * both forms.
 */

/** A row reference by the UUID the database gave it. */
export type OvsdbUuid = ['uuid', string];
/** A reference, inside one transaction, to a row inserted by an earlier `insert` with `uuid-name`. */
export type OvsdbNamedUuid = ['named-uuid', string];
/** One scalar of any OVSDB column type. */
export type OvsdbAtom = string | number | boolean | OvsdbUuid | OvsdbNamedUuid;
export type OvsdbSet = ['set', OvsdbAtom[]];
export type OvsdbMap = ['map', Array<[OvsdbAtom, OvsdbAtom]>];
/** A column's value: an atom, a set (a one-element set may come as its bare atom) or a map. */
export type OvsdbValue = OvsdbAtom | OvsdbSet | OvsdbMap;
/** A row, or part of one: column name to value. */
export type OvsdbRow = Record<string, OvsdbValue>;

export type ConditionFunction = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
/** `[column, function, value]`; `_uuid` is a column too. */
export type Condition = [string, ConditionFunction, OvsdbValue];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
/** `[column, mutator, value]`: `insert`/`delete` add or remove set elements or map keys. */
export type Mutation = [string, Mutator, OvsdbValue];

/** One operation of a `transact` (RFC 7047 §5.2). */
export type OvsdbOp =
  | { op: 'insert'; table: string; row: OvsdbRow; 'uuid-name'?: string }
  | { op: 'select'; table: string; where: Condition[]; columns?: string[] }
  | { op: 'update'; table: string; where: Condition[]; row: OvsdbRow }
  | { op: 'mutate'; table: string; where: Condition[]; mutations: Mutation[] }
  | { op: 'delete'; table: string; where: Condition[] }
  | {
      op: 'wait';
      table: string;
      where: Condition[];
      columns: string[];
      until: '==' | '!=';
      rows: OvsdbRow[];
      /** Milliseconds the server waits for the condition: 0 fails at once if unmet, absent waits forever. */
      timeout?: number;
    }
  | { op: 'commit'; durable: boolean }
  | { op: 'abort' }
  | { op: 'comment'; comment: string }
  | { op: 'assert'; lock: string };

/** The result of one operation: `uuid` for insert, `rows` for select, `count` for update/mutate/delete. */
export interface OvsdbOpResult {
  uuid?: OvsdbUuid;
  rows?: OvsdbRow[];
  count?: number;
  error?: string;
  details?: string;
}

/** A monitor's view of one row change: `old` absent on insert, `new` absent on delete. */
export interface RowUpdate {
  old?: OvsdbRow;
  new?: OvsdbRow;
}
/** Table name to row UUID to change, as sent in monitor replies and `update` notifications. */
export type TableUpdates = Record<string, Record<string, RowUpdate>>;

export const uuid = (u: string): OvsdbUuid => ['uuid', u];
export const namedUuid = (n: string): OvsdbNamedUuid => ['named-uuid', n];

/** A set value; also the way to say "empty" for optional columns (`set([])`). */
export function set(values: OvsdbAtom[]): OvsdbValue {
  return ['set', values];
}

/** A string-to-string map (external_ids, options, other_config...). */
export function map(obj: Record<string, string>): OvsdbValue {
  return ['map', Object.entries(obj)];
}

function isTagged(v: unknown, tag: string): boolean {
  return Array.isArray(v) && v.length === 2 && v[0] === tag;
}

/** The elements of a set column, whether the server sent `["set", [...]]` or a bare atom. */
export function fromSet(v: OvsdbValue | undefined): OvsdbAtom[] {
  if (v === undefined) return [];
  if (isTagged(v, 'set')) return (v as OvsdbSet)[1];
  if (isTagged(v, 'map')) throw new TypeError('fromSet: got a map');
  return [v as OvsdbAtom];
}

/** An atom as text: a UUID's id, a number's decimal form. */
export function atomText(a: OvsdbAtom): string {
  return Array.isArray(a) ? a[1] : String(a);
}

/** A map column as a plain object; keys and values as text ({@link atomText}). */
export function fromMap(v: OvsdbValue | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === undefined) return out;
  if (!isTagged(v, 'map')) throw new TypeError('fromMap: not a map');
  for (const [k, val] of (v as OvsdbMap)[1]) out[atomText(k)] = atomText(val);
  return out;
}

/**
 * The UUID a reference column holds, or undefined for an empty optional reference (`["set", []]`).
 * Throws if the column holds more than one.
 */
export function fromUuid(v: OvsdbValue | undefined): string | undefined {
  const atoms = fromSet(v);
  if (atoms.length > 1) throw new TypeError('fromUuid: more than one value');
  const a = atoms[0];
  if (a === undefined) return undefined;
  if (!isTagged(a, 'uuid')) throw new TypeError('fromUuid: not a uuid');
  return (a as OvsdbUuid)[1];
}
