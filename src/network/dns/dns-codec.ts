/**
 * DNS wire format (RFC 1035 §4, AAAA from RFC 3596, OPT from RFC 6891): decode any message,
 * encode with name compression, and a fast query parser for the server's hot path.
 *
 * Names are dotted text without the trailing dot (the root is `""`). A label byte outside
 * printable ASCII, or a `.` or `\` inside a label, is written `\DDD` (decimal), as in zone files,
 * so every wire name round-trips. Malformed input throws {@link DnsFormatError}, never anything else.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIp } from '../ipam/ip-address.js';

export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const;

export const DnsClass = { IN: 1, ANY: 255 } as const;

export const DnsRcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (12-bit) rcode carried half in the OPT record. */
  BADVERS: 16,
} as const;

/** The header size, and the answer-name pointer `0xC00C` that refers to the first question. */
export const HEADER_SIZE = 12;
/** RFC 1035 §2.3.4. */
const MAX_NAME_WIRE = 255;
const MAX_LABEL = 63;
/** RFC 1035 §4.2.1: UDP messages without EDNS. */
export const CLASSIC_UDP_SIZE = 512;

/** Thrown for any malformed message; `offset` is where reading stopped. */
export class DnsFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`malformed DNS message at byte ${offset}: ${message}`);
    this.name = 'DnsFormatError';
  }
}

export interface DnsHeader {
  id: number;
  /** Response (true) or query. */
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The low 4 bits; an OPT record may extend it (see {@link DnsMessage.rcode}). */
  rcode: number;
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

/**
 * One resource record. `data` is the address text for A/AAAA, the target name for
 * PTR/CNAME/NS, and the raw RDATA bytes for every other type.
 */
export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: string | Uint8Array;
}

export interface EdnsOption {
  code: number;
  data: Uint8Array;
}

/** The OPT pseudo-record (RFC 6891 §6.1), lifted out of the additional section. */
export interface Edns {
  udpSize: number;
  /** Upper 8 bits of the 12-bit rcode. */
  extendedRcode: number;
  version: number;
  dnssecOk: boolean;
  options: EdnsOption[];
}

export interface DnsMessage {
  header: DnsHeader;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  /** Additional records other than OPT. */
  additionals: DnsRecord[];
  edns?: Edns;
}

const NAME_TYPES: ReadonlySet<number> = new Set([DnsType.PTR, DnsType.CNAME, DnsType.NS]);

// ---------------------------------------------------------------------------------------------
// Names

function isPlainLabelByte(b: number): boolean {
  return b > 0x20 && b < 0x7f && b !== 0x2e && b !== 0x5c;
}

/**
 * Reads a possibly compressed name starting at `offset`. Returns the text and the offset just
 * past the name as it appears at `offset` (a pointer counts as its two bytes).
 *
 * Each pointer must point strictly before the start of the name, or of the last pointer's
 * target: an encoder only points at names it wrote earlier, and strictly falling targets make a
 * loop impossible (a pointer back into the labels just read is one).
 */
export function readName(buf: Uint8Array, offset: number, lowerCase = false): { name: string; end: number } {
  let pos = offset;
  let floor = offset;
  let end = -1;
  let wireLength = 1;
  let name = '';
  for (;;) {
    if (pos >= buf.length) throw new DnsFormatError('name runs past the end', pos);
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer', pos);
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= floor) throw new DnsFormatError('compression pointer does not point backwards', pos);
      if (end < 0) end = pos + 2;
      pos = floor = target;
      continue;
    }
    if (kind !== 0) throw new DnsFormatError(`unsupported label type 0x${kind.toString(16)}`, pos);
    if (pos + 1 + len > buf.length) throw new DnsFormatError('label runs past the end', pos);
    wireLength += len + 1;
    if (wireLength > MAX_NAME_WIRE) throw new DnsFormatError('name longer than 255 bytes', pos);
    if (name.length) name += '.';
    for (let i = pos + 1; i <= pos + len; i++) {
      let b = buf[i]!;
      if (isPlainLabelByte(b)) {
        if (lowerCase && b >= 0x41 && b <= 0x5a) b |= 0x20;
        name += String.fromCharCode(b);
      } else {
        name += '\\' + String(b).padStart(3, '0');
      }
    }
    pos += 1 + len;
  }
  return { name, end };
}

/** Splits dotted text into label byte arrays, undoing `\DDD` and `\c` escapes. */
export function nameToLabels(name: string): Uint8Array[] {
  if (name === '' || name === '.') return [];
  const text = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  const labels: Uint8Array[] = [];
  let current: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      labels.push(Uint8Array.from(current));
      current = [];
    } else if (c === 0x5c) {
      const digits = /^[0-9]{3}/.exec(text.slice(i + 1, i + 4));
      if (digits) {
        const v = Number(digits[0]);
        if (v > 255) throw new DnsFormatError(`bad escape in name "${name}"`, 0);
        current.push(v);
        i += 3;
      } else if (i + 1 < text.length) {
        current.push(text.charCodeAt(++i) & 0xff);
      } else {
        throw new DnsFormatError(`dangling escape in name "${name}"`, 0);
      }
    } else if (c > 0x7f) {
      throw new DnsFormatError(`non-ASCII name "${name}" (use punycode)`, 0);
    } else {
      current.push(c);
    }
  }
  labels.push(Uint8Array.from(current));
  let wire = 1;
  for (const l of labels) {
    if (l.length === 0) throw new DnsFormatError(`empty label in name "${name}"`, 0);
    if (l.length > MAX_LABEL) throw new DnsFormatError(`label longer than 63 bytes in "${name}"`, 0);
    wire += l.length + 1;
  }
  if (wire > MAX_NAME_WIRE) throw new DnsFormatError(`name "${name}" longer than 255 bytes`, 0);
  return labels;
}

/** The uncompressed wire form of a name. */
export function encodeName(name: string): Buffer {
  const labels = nameToLabels(name);
  let size = 1;
  for (const l of labels) size += l.length + 1;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const l of labels) {
    out[pos++] = l.length;
    out.set(l, pos);
    pos += l.length;
  }
  out[pos] = 0;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Addresses

export function ipv4ToBytes(address: string): Uint8Array {
  if (!isIPv4(address)) throw new DnsFormatError(`"${address}" is not an IPv4 address`, 0);
  return Uint8Array.from(address.split('.').map(Number));
}

export function ipv6ToBytes(address: string): Uint8Array {
  const bare = address.split('%')[0]!;
  if (!isIPv6(bare)) throw new DnsFormatError(`"${address}" is not an IPv6 address`, 0);
  let text = bare;
  const out = new Uint8Array(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4ToBytes(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const parts = tail === undefined ? headParts : [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  parts.forEach((p: string, i: number) => {
    const v = parseInt(p, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function bytesToIpv4(b: Uint8Array, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** RFC 5952 text of 16 bytes (the IPAM's formatter: one rule for the whole daemon). */
export function bytesToIpv6(b: Uint8Array, offset = 0): string {
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(b[offset + i]!);
  return formatIp({ family: 6, value });
}

/** Canonical text of an address (IPv6 compressed per RFC 5952, IPv4-mapped IPv6 as IPv4). */
export function canonicalAddress(address: string): string | undefined {
  if (isIPv4(address)) return address;
  const bare = address.split('%')[0]!;
  if (!isIPv6(bare)) return undefined;
  const b = ipv6ToBytes(bare);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return bytesToIpv4(b, 12);
  return bytesToIpv6(b);
}

/** The PTR owner name of an address: `d.c.b.a.in-addr.arpa` or the nibble form under `ip6.arpa`. */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  const b = ipv6ToBytes(address);
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((b[i]! & 0xf).toString(16), (b[i]! >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function u16(buf: Uint8Array, pos: number): number {
  if (pos + 2 > buf.length) throw new DnsFormatError('truncated', pos);
  return (buf[pos]! << 8) | buf[pos + 1]!;
}

function u32(buf: Uint8Array, pos: number): number {
  if (pos + 4 > buf.length) throw new DnsFormatError('truncated', pos);
  return ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
}

export function decodeHeader(buf: Uint8Array): DnsHeader {
  if (buf.length < HEADER_SIZE) throw new DnsFormatError('shorter than a header', buf.length);
  const f = u16(buf, 2);
  return {
    id: u16(buf, 0),
    qr: (f & 0x8000) !== 0,
    opcode: (f >> 11) & 0xf,
    aa: (f & 0x0400) !== 0,
    tc: (f & 0x0200) !== 0,
    rd: (f & 0x0100) !== 0,
    ra: (f & 0x0080) !== 0,
    ad: (f & 0x0020) !== 0,
    cd: (f & 0x0010) !== 0,
    rcode: f & 0xf,
  };
}

function decodeQuestion(buf: Uint8Array, pos: number): { q: DnsQuestion; end: number } {
  const { name, end } = readName(buf, pos);
  return { q: { name, type: u16(buf, end), class: u16(buf, end + 2) }, end: end + 4 };
}

interface RawRecord {
  record: DnsRecord;
  end: number;
}

function decodeRecord(buf: Uint8Array, pos: number): RawRecord {
  const { name, end: nameEnd } = readName(buf, pos);
  const type = u16(buf, nameEnd);
  const klass = u16(buf, nameEnd + 2);
  const ttl = u32(buf, nameEnd + 4);
  const rdlen = u16(buf, nameEnd + 8);
  const rdStart = nameEnd + 10;
  const rdEnd = rdStart + rdlen;
  if (rdEnd > buf.length) throw new DnsFormatError('RDATA runs past the end', rdStart);
  let data: string | Uint8Array;
  if (type === DnsType.A && klass === DnsClass.IN) {
    if (rdlen !== 4) throw new DnsFormatError(`A record with ${rdlen}-byte RDATA`, rdStart);
    data = bytesToIpv4(buf, rdStart);
  } else if (type === DnsType.AAAA && klass === DnsClass.IN) {
    if (rdlen !== 16) throw new DnsFormatError(`AAAA record with ${rdlen}-byte RDATA`, rdStart);
    data = bytesToIpv6(buf, rdStart);
  } else if (NAME_TYPES.has(type)) {
    // The target may be compressed against the whole message, but must fill RDATA exactly.
    const target = readName(buf, rdStart);
    if (target.end !== rdEnd) throw new DnsFormatError('name does not fill RDATA', rdStart);
    data = target.name;
  } else {
    data = Uint8Array.prototype.slice.call(buf, rdStart, rdEnd);
  }
  return { record: { name, type, class: klass, ttl, data }, end: rdEnd };
}

function toEdns(rec: DnsRecord, offset: number): Edns {
  if (rec.name !== '') throw new DnsFormatError('OPT record not owned by the root', offset);
  const raw = rec.data as Uint8Array;
  const options: EdnsOption[] = [];
  for (let p = 0; p < raw.length; ) {
    if (p + 4 > raw.length) throw new DnsFormatError('truncated EDNS option', offset);
    const code = (raw[p]! << 8) | raw[p + 1]!;
    const len = (raw[p + 2]! << 8) | raw[p + 3]!;
    if (p + 4 + len > raw.length) throw new DnsFormatError('EDNS option runs past RDATA', offset);
    options.push({ code, data: raw.slice(p + 4, p + 4 + len) });
    p += 4 + len;
  }
  return {
    udpSize: rec.class,
    extendedRcode: rec.ttl >>> 24,
    version: (rec.ttl >>> 16) & 0xff,
    dnssecOk: (rec.ttl & 0x8000) !== 0,
    options,
  };
}

/** Decodes a whole message. Trailing bytes after the counted sections are ignored. */
export function decodeMessage(buf: Uint8Array): DnsMessage {
  const header = decodeHeader(buf);
  const counts = [u16(buf, 4), u16(buf, 6), u16(buf, 8), u16(buf, 10)] as const;
  let pos = HEADER_SIZE;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { q, end } = decodeQuestion(buf, pos);
    questions.push(q);
    pos = end;
  }
  const sections: DnsRecord[][] = [[], [], []];
  let edns: Edns | undefined;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const start = pos;
      const { record, end } = decodeRecord(buf, pos);
      pos = end;
      if (record.type === DnsType.OPT) {
        // RFC 6891 §6.1.1: at most one OPT, and only in the additional section.
        if (s !== 2 || edns) throw new DnsFormatError('misplaced or repeated OPT record', start);
        edns = toEdns(record, start);
      } else {
        sections[s]!.push(record);
      }
    }
  }
  const msg: DnsMessage = { header, questions, answers: sections[0]!, authorities: sections[1]!, additionals: sections[2]! };
  if (edns) msg.edns = edns;
  return msg;
}

/** The full rcode: the header's 4 bits plus the OPT record's upper 8 bits. */
export function fullRcode(msg: DnsMessage): number {
  return ((msg.edns?.extendedRcode ?? 0) << 4) | msg.header.rcode;
}

// ---------------------------------------------------------------------------------------------
// Hot-path query parsing

/** What the server needs from a query, read without building objects for every section. */
export interface ParsedQuery {
  id: number;
  /** Header flags word as received. */
  flags: number;
  opcode: number;
  qdcount: number;
  /** The first question's name in lower case (matching is case-insensitive). */
  name: string;
  type: number;
  class: number;
  /** Offset just past the first question: bytes [0, questionEnd) are echoed in the response. */
  questionEnd: number;
  /** The client's EDNS, if it sent an OPT record. */
  edns?: { udpSize: number; version: number; dnssecOk: boolean };
}

/** Skips one resource record, returning the offset just past it (and its type and position). */
function skipRecord(buf: Uint8Array, pos: number): { end: number; type: number; fixed: number } {
  const { end: nameEnd } = readName(buf, pos);
  const type = u16(buf, nameEnd);
  const rdlen = u16(buf, nameEnd + 8);
  const end = nameEnd + 10 + rdlen;
  if (end > buf.length) throw new DnsFormatError('RDATA runs past the end', nameEnd + 10);
  return { end, type, fixed: nameEnd };
}

/**
 * Parses a query for serving: header, the first question, and the OPT record if any. Throws
 * {@link DnsFormatError} if the message is malformed or has no question.
 */
export function parseQuery(buf: Uint8Array): ParsedQuery {
  if (buf.length < HEADER_SIZE) throw new DnsFormatError('shorter than a header', buf.length);
  const flags = (buf[2]! << 8) | buf[3]!;
  const qdcount = (buf[4]! << 8) | buf[5]!;
  if (qdcount === 0) throw new DnsFormatError('no question', 4);
  const { name, end } = readName(buf, HEADER_SIZE, true);
  const type = u16(buf, end);
  const klass = u16(buf, end + 2);
  const questionEnd = end + 4;
  const q: ParsedQuery = {
    id: (buf[0]! << 8) | buf[1]!,
    flags,
    opcode: (flags >> 11) & 0xf,
    qdcount,
    name,
    type,
    class: klass,
    questionEnd,
  };
  const ancount = (buf[6]! << 8) | buf[7]!;
  const nscount = (buf[8]! << 8) | buf[9]!;
  const arcount = (buf[10]! << 8) | buf[11]!;
  if (arcount > 0) {
    let pos = questionEnd;
    for (let i = 1; i < qdcount; i++) pos = readName(buf, pos).end + 4;
    for (let i = 0; i < ancount + nscount; i++) pos = skipRecord(buf, pos).end;
    for (let i = 0; i < arcount; i++) {
      const r = skipRecord(buf, pos);
      if (r.type === DnsType.OPT) {
        if (q.edns) throw new DnsFormatError('repeated OPT record', pos);
        const ttl = u32(buf, r.fixed + 4);
        q.edns = { udpSize: u16(buf, r.fixed + 2), version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0 };
      }
      pos = r.end;
    }
  }
  return q;
}

/** Offset just past the first question of a message (for echoing it), or throws. */
export function questionEnd(buf: Uint8Array): number {
  if (buf.length < HEADER_SIZE) throw new DnsFormatError('shorter than a header', buf.length);
  if (((buf[4]! << 8) | buf[5]!) === 0) return HEADER_SIZE;
  const end = readName(buf, HEADER_SIZE).end + 4;
  if (end > buf.length) throw new DnsFormatError('truncated question', buf.length);
  return end;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** A growable output buffer with a compression dictionary (suffix text → offset). */
class Writer {
  buf = Buffer.allocUnsafe(512);
  pos = 0;
  private readonly names = new Map<string, number>();

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** Writes a name, pointing at an earlier copy of its longest known suffix. */
  name(name: string, compress = true): void {
    const labels = nameToLabels(name);
    for (let i = 0; i < labels.length; i++) {
      const key = labels
        .slice(i)
        .map((l) => Buffer.from(l).toString('latin1').toLowerCase())
        .join('\0');
      const at = compress ? this.names.get(key) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (compress && this.pos < 0x4000) this.names.set(key, this.pos);
      this.u8(labels[i]!.length);
      this.bytes(labels[i]!);
    }
    this.u8(0);
  }
}

function writeRecord(w: Writer, r: DnsRecord): void {
  w.name(r.name);
  w.u16(r.type);
  w.u16(r.class);
  w.u32(r.ttl);
  const lenAt = w.pos;
  w.u16(0);
  if (typeof r.data === 'string') {
    if (r.type === DnsType.A) w.bytes(ipv4ToBytes(r.data));
    else if (r.type === DnsType.AAAA) w.bytes(ipv6ToBytes(r.data));
    // RFC 3597 §4: only the well-known types of RFC 1035 may be compressed in RDATA.
    else if (NAME_TYPES.has(r.type)) w.name(r.data);
    else throw new DnsFormatError(`type ${r.type} needs RDATA bytes, not text`, w.pos);
  } else {
    w.bytes(r.data);
  }
  w.buf.writeUInt16BE(w.pos - lenAt - 2, lenAt);
}

/** Encodes a message, compressing names. Counts come from the arrays (plus one for `edns`). */
export function encodeMessage(msg: DnsMessage): Buffer {
  const w = new Writer();
  const h = msg.header;
  w.u16(h.id);
  w.u16(
    (h.qr ? 0x8000 : 0) |
      ((h.opcode & 0xf) << 11) |
      (h.aa ? 0x0400 : 0) |
      (h.tc ? 0x0200 : 0) |
      (h.rd ? 0x0100 : 0) |
      (h.ra ? 0x0080 : 0) |
      (h.ad ? 0x0020 : 0) |
      (h.cd ? 0x0010 : 0) |
      (h.rcode & 0xf),
  );
  w.u16(msg.questions.length);
  w.u16(msg.answers.length);
  w.u16(msg.authorities.length);
  w.u16(msg.additionals.length + (msg.edns ? 1 : 0));
  for (const q of msg.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const r of msg.answers) writeRecord(w, r);
  for (const r of msg.authorities) writeRecord(w, r);
  for (const r of msg.additionals) writeRecord(w, r);
  if (msg.edns) {
    const e = msg.edns;
    let rdlen = 0;
    for (const o of e.options) rdlen += 4 + o.data.length;
    const rdata = Buffer.allocUnsafe(rdlen);
    let p = 0;
    for (const o of e.options) {
      rdata.writeUInt16BE(o.code, p);
      rdata.writeUInt16BE(o.data.length, p + 2);
      rdata.set(o.data, p + 4);
      p += 4 + o.data.length;
    }
    writeRecord(w, {
      name: '',
      type: DnsType.OPT,
      class: e.udpSize,
      ttl: (((e.extendedRcode & 0xff) << 24) | ((e.version & 0xff) << 16) | (e.dnssecOk ? 0x8000 : 0)) >>> 0,
      data: rdata,
    });
  }
  return Buffer.from(w.buf.subarray(0, w.pos));
}

/**
 * Pre-encodes one answer record whose owner is the first question (pointer `0xC00C`), so a
 * response is just header + echoed question + these bytes.
 */
export function encodeAnswerForQuestion(type: number, ttl: number, data: string): Buffer {
  let rdata: Uint8Array;
  if (type === DnsType.A) rdata = ipv4ToBytes(data);
  else if (type === DnsType.AAAA) rdata = ipv6ToBytes(data);
  else if (NAME_TYPES.has(type)) rdata = encodeName(data);
  else throw new DnsFormatError(`cannot pre-encode type ${type}`, 0);
  const out = Buffer.allocUnsafe(12 + rdata.length);
  out.writeUInt16BE(0xc000 | HEADER_SIZE, 0);
  out.writeUInt16BE(type, 2);
  out.writeUInt16BE(DnsClass.IN, 4);
  out.writeUInt32BE(ttl, 6);
  out.writeUInt16BE(rdata.length, 10);
  out.set(rdata, 12);
  return out;
}
