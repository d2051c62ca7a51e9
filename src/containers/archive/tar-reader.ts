import { Writable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { InvalidParameter } from '../../errors.js';
import { headerChecksumOk, headerName, headerNumber, headerString, paxRecords } from '../../images/tar-member.js';

/** One member of a tar stream, long names and PAX records applied. */
export interface TarEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional from PAX). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

/** What receives the members: a header, its data in order, its end; then the end of the archive. */
export interface TarSink {
  begin(e: TarEntry): Promise<void> | void;
  /**
   * File data in order; several pieces at once when they arrived together. The pieces are views
   * of the input chunks, which the reader never reuses, so a sink may keep them to write later.
   */
  data(chunks: Buffer[]): Promise<void> | void;
  end(): Promise<void> | void;
  finish(): Promise<void> | void;
}

const BLOCK = 512;

function typeOf(flag: string): TarEntry['type'] {
  switch (flag) {
    case '0':
    case '\0':
    case '':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    default:
      return 'other';
  }
}

/**
 * A streaming tar parser (ustar, GNU long names, PAX), written to as a Writable: members go to
 * the sink as they arrive, file data in the chunks it came in, with back-pressure, so a file of
 * any size passes through without being held in memory.
 */
export class TarReader extends Writable {
  private state: 'header' | 'data' | 'meta' | 'skip' | 'done' = 'header';
  private readonly header = Buffer.alloc(BLOCK);
  private headerLen = 0;
  private remaining = 0;
  private padding = 0;
  private meta: Buffer[] = [];
  private metaKind = '';
  private longName?: string;
  private longLink?: string;
  private pax?: Map<string, string>;
  private inEntry = false;

  constructor(private readonly sink: TarSink) {
    super({ highWaterMark: 4 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.input([chunk]).then(() => cb(), cb);
  }

  /** Chunks that queued while a write was under way: handled together, their data in one writev. */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.input(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  private gunzip?: Gunzip;
  private sniffed = false;
  /** What the gunzip has produced and the parser has not taken yet, in order. */
  private inflated: Buffer[] = [];

  /** A gzip stream (Docker's DecompressStream accepts one) is inflated on the way in. */
  private async input(chunks: Buffer[]): Promise<void> {
    if (!this.sniffed && chunks[0]!.length > 0) {
      this.sniffed = true;
      const c = chunks[0]!;
      if (c.length >= 2 && c[0] === 0x1f && c[1] === 0x8b) {
        this.gunzip = createGunzip();
        this.gunzip.on('data', (b: Buffer) => this.inflated.push(b));
        // Failures come back through the write and end callbacks; the event must not go unheard.
        this.gunzip.on('error', () => {});
      }
    }
    const gz = this.gunzip;
    if (!gz) return this.consume(chunks);
    for (const c of chunks) await new Promise<void>((resolve, reject) => gz.write(c, (err) => (err ? reject(err) : resolve())));
    const out = this.inflated.splice(0);
    if (out.length) await this.consume(out);
  }

  private async endGzip(): Promise<void> {
    const gz = this.gunzip;
    if (!gz) return;
    await new Promise<void>((resolve, reject) => {
      gz.once('end', resolve);
      gz.once('error', reject);
      gz.end();
    });
    const out = this.inflated.splice(0);
    if (out.length) await this.consume(out);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const done = async (): Promise<void> => {
      await this.endGzip();
      // A stream may stop at a member boundary without the two zero blocks (Go's reader allows it).
      if (this.state === 'data' || this.state === 'meta' || this.headerLen > 0) throw new InvalidParameter('unexpected EOF');
      await this.sink.finish();
    };
    done().then(() => cb(), cb);
  }

  private async consume(chunks: Buffer[]): Promise<void> {
    // File data of this batch, handed over in one call when the member ends or the batch does.
    let pending: Buffer[] = [];
    const flush = async (): Promise<void> => {
      if (pending.length) await this.sink.data(pending);
      pending = [];
    };
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) {
        switch (this.state) {
          case 'done':
            off = chunk.length;
            break;
          case 'data': {
            const n = Math.min(this.remaining, chunk.length - off);
            if (n > 0) pending.push(chunk.subarray(off, off + n));
            off += n;
            this.remaining -= n;
            if (this.remaining === 0) {
              await flush();
              await this.endEntry();
            }
            break;
          }
          case 'skip': {
            const n = Math.min(this.remaining, chunk.length - off);
            off += n;
            this.remaining -= n;
            if (this.remaining === 0) this.state = 'header';
            break;
          }
          case 'meta': {
            const n = Math.min(this.remaining, chunk.length - off);
            this.meta.push(Buffer.from(chunk.subarray(off, off + n)));
            off += n;
            this.remaining -= n;
            if (this.remaining === 0) this.applyMeta();
            break;
          }
          case 'header': {
            const n = Math.min(BLOCK - this.headerLen, chunk.length - off);
            chunk.copy(this.header, this.headerLen, off, off + n);
            this.headerLen += n;
            off += n;
            if (this.headerLen === BLOCK) {
              this.headerLen = 0;
              await this.onHeader();
            }
            break;
          }
        }
      }
    }
    await flush();
  }

  private async endEntry(): Promise<void> {
    if (this.inEntry) await this.sink.end();
    this.inEntry = false;
    this.remaining = this.padding;
    this.state = this.padding ? 'skip' : 'header';
  }

  private applyMeta(): void {
    const body = Buffer.concat(this.meta);
    this.meta = [];
    if (this.metaKind === 'L') this.longName = headerString(body, 0, body.length);
    else if (this.metaKind === 'K') this.longLink = headerString(body, 0, body.length);
    else if (this.metaKind === 'x') this.pax = paxRecords(body);
    this.remaining = this.padding;
    this.state = this.padding ? 'skip' : 'header';
  }

  private async onHeader(): Promise<void> {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      // The first zero block ends the archive (the second one, and any padding, is ignored).
      this.state = 'done';
      return;
    }
    if (!headerChecksumOk(h)) throw new InvalidParameter('archive/tar: invalid tar header');
    const flag = String.fromCharCode(h[156]!);
    let size = headerNumber(h, 124, 12);
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      this.metaKind = flag;
      this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
      this.remaining = size;
      if (size > 1 << 20) throw new InvalidParameter('archive/tar: header too large');
      if (size === 0) this.applyMeta();
      else this.state = 'meta';
      return;
    }
    let name = headerName(h);
    let linkname = headerString(h, 157, 100);
    let mtime = headerNumber(h, 136, 12);
    let uid = headerNumber(h, 108, 8);
    let gid = headerNumber(h, 116, 8);
    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkname = this.longLink;
    const pax = this.pax;
    if (pax) {
      if (pax.has('path')) name = pax.get('path')!;
      if (pax.has('linkpath')) linkname = pax.get('linkpath')!;
      if (pax.has('size')) size = Number(pax.get('size'));
      if (pax.has('uid')) uid = Number(pax.get('uid'));
      if (pax.has('gid')) gid = Number(pax.get('gid'));
      if (pax.has('mtime')) mtime = Number(pax.get('mtime'));
    }
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = undefined;
    const type = typeOf(flag);
    // Only regular files carry data in the archive; a link's size field means nothing.
    const dataSize = type === 'file' || type === 'other' ? size : 0;
    this.padding = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    this.remaining = dataSize;
    if (type === 'other') {
      // Sparse files, volume labels and the like: skipped, as nothing here makes them.
      this.remaining = dataSize + this.padding;
      this.state = this.remaining ? 'skip' : 'header';
      return;
    }
    const entry: TarEntry = {
      name,
      type,
      mode: headerNumber(h, 100, 8) & 0o7777,
      uid,
      gid,
      size: dataSize,
      mtime,
      linkname,
      devmajor: headerNumber(h, 329, 8),
      devminor: headerNumber(h, 337, 8),
    };
    await this.sink.begin(entry);
    this.inEntry = true;
    this.state = 'data';
    if (dataSize === 0) await this.endEntry();
  }
}
