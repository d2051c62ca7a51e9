/** X25519 key pairs for WireGuard from node:crypto; keys travel as 64-char lowercase hex (UAPI's form). */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';

export interface WgKeyPair {
  /** 32 bytes, hex. */
  privateKey: string;
  /** 32 bytes, hex. */
  publicKey: string;
}

/**
 * node:crypto takes a raw X25519 private key only wrapped in PKCS#8: this is the DER of
 * PrivateKeyInfo { version 0, AlgorithmIdentifier { 1.3.101.110 } , OCTET STRING { OCTET STRING(32) } }
 * up to the 32 key bytes.
 */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const KEY_HEX_RE = /^[0-9a-f]{64}$/;

/** Whether `s` is a key in UAPI's form (64 lowercase hex digits). */
export function isKeyHex(s: string): boolean {
  return KEY_HEX_RE.test(s);
}

function assertKeyHex(s: string, what: string): void {
  if (!isKeyHex(s)) throw new Error(`invalid WireGuard ${what}: expected 64 lowercase hex digits`);
}

/**
 * A fresh key pair: 32 random bytes clamped as X25519 wants them (as `wg genkey` does), and their
 * public key. Not generateKeyPairSync: in Node 20 its job, once unreachable, takes the new key's
 * mutex in its destructor, and a GC that collects it while an export of that key holds the same
 * mutex (exporting allocates) deadlocks the daemon's thread for good (seen at the 71st container
 * of the wireguard bench's scale run, with the daemon's small young generation).
 */
export function generateKeyPair(): WgKeyPair {
  const key = randomBytes(32);
  key[0]! &= 248;
  key[31]! &= 127;
  key[31]! |= 64;
  const privateKey = key.toString('hex');
  key.fill(0);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** The public key of a private key (both hex). Accepts unclamped keys, as WireGuard does (X25519 clamps). */
export function publicKeyOf(privateKeyHex: string): string {
  assertKeyHex(privateKeyHex, 'private key');
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKeyHex, 'hex')]);
  const priv = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  if (jwk.x === undefined) throw new Error('node:crypto returned an X25519 public JWK without x');
  return Buffer.from(jwk.x, 'base64url').toString('hex');
}

/** Hex → base64 (what `wg` and wg-quick configs show). */
export function keyToBase64(hex: string): string {
  assertKeyHex(hex, 'key');
  return Buffer.from(hex, 'hex').toString('base64');
}

/** Base64 (from `wg` or a config) → hex. */
export function keyFromBase64(b64: string): string {
  const buf = Buffer.from(b64, 'base64');
  // Buffer.from ignores junk silently: re-encoding catches it.
  if (buf.length !== 32 || buf.toString('base64') !== b64) throw new Error('invalid WireGuard key: expected 44 base64 characters (32 bytes)');
  return buf.toString('hex');
}
