/** X25519 key pairs for WireGuard from node:crypto; keys travel as 64-char lowercase hex (UAPI's form). */

export interface WgKeyPair {
  /** 32 bytes, hex. */
  privateKey: string;
  /** 32 bytes, hex. */
  publicKey: string;
}

/** A fresh key pair. */
export function generateKeyPair(): WgKeyPair {
  throw new Error('not implemented');
}

/** The public key of a private key (both hex). */
export function publicKeyOf(privateKeyHex: string): string {
  void privateKeyHex;
  throw new Error('not implemented');
}

/** Hex → base64 (what `wg` and wg-quick configs show). */
export function keyToBase64(hex: string): string {
  void hex;
  throw new Error('not implemented');
}
