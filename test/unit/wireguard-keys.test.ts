import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair, isKeyHex, keyFromBase64, keyToBase64, publicKeyOf } from '../../src/network/drivers/wireguard/wg-keys.js';

// RFC 7748 §6.1 (Alice), and a pair made by `wg genkey | wg pubkey` on the build machine.
const RFC_PRIV = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const RFC_PUB = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const WG_PRIV_B64 = 'MJaDir2y6wU7QP06Rj7+pfqNwcgL91qZvSADMN7aRno=';
const WG_PUB_B64 = 'V86aCY0/N2XGwKPlgHgDennxOPDbLuq3POKXDr67+ww=';

describe('WireGuard keys', () => {
  it('derives the X25519 public key of known private keys', () => {
    assert.equal(publicKeyOf(RFC_PRIV), RFC_PUB);
    assert.equal(keyToBase64(publicKeyOf(keyFromBase64(WG_PRIV_B64))), WG_PUB_B64);
  });

  it('makes fresh pairs in UAPI form whose halves belong together', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const kp = generateKeyPair();
      assert.ok(isKeyHex(kp.privateKey) && isKeyHex(kp.publicKey), JSON.stringify(kp));
      assert.equal(publicKeyOf(kp.privateKey), kp.publicKey);
      // Clamped as WireGuard expects (RFC 7748 decodeScalar25519).
      const last = parseInt(kp.privateKey.slice(62), 16);
      assert.equal(parseInt(kp.privateKey.slice(0, 2), 16) & 7, 0);
      assert.equal(last & 0x80, 0);
      assert.equal(last & 0x40, 0x40);
      seen.add(kp.privateKey);
    }
    assert.equal(seen.size, 20);
  });

  it('gives the same public key for an unclamped private key', () => {
    const unclamped = 'ff' + RFC_PRIV.slice(2, 62) + 'ff';
    const clamped = 'f8' + RFC_PRIV.slice(2, 62) + '7f';
    assert.equal(publicKeyOf(unclamped), publicKeyOf(clamped));
  });

  it('converts between hex and base64', () => {
    assert.equal(keyToBase64(RFC_PUB), Buffer.from(RFC_PUB, 'hex').toString('base64'));
    assert.equal(keyFromBase64(keyToBase64(RFC_PUB)), RFC_PUB);
    assert.equal(keyToBase64('00'.repeat(32)), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
  });

  it('refuses what is not a 32-byte key', () => {
    for (const bad of ['', 'ab', RFC_PRIV.slice(1), RFC_PRIV + '00', RFC_PRIV.toUpperCase(), 'g' + RFC_PRIV.slice(1)]) {
      assert.throws(() => publicKeyOf(bad), /invalid WireGuard private key/, bad);
      assert.throws(() => keyToBase64(bad), /invalid WireGuard key/, bad);
    }
    for (const bad of ['', 'AAAA', WG_PUB_B64.slice(1), WG_PUB_B64 + 'A', '!' + WG_PUB_B64.slice(1)]) {
      assert.throws(() => keyFromBase64(bad), /invalid WireGuard key/, bad);
    }
  });
});
