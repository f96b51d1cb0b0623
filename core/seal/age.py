"""age (age-encryption.org/v1) X25519 recipients: parse, and encrypt a small secret to one.

Only what sealing needs: an ``age1...`` recipient (or an OpenSSH ``ssh-ed25519`` key, which
age encrypts to with its ``ssh-ed25519`` stanza) (Bech32, HRP ``age``, 32-byte X25519
public key) and encryption of a short secret (an envelope's data key) to a single X25519
recipient, producing a binary age file that the reference ``age`` CLI (and any other
implementation of the public spec, https://age-encryption.org/v1) decrypts.

Construction (from the spec):

* file key: 16 random bytes (``SecretBuffer.fill_random``);
* stanza ``-> X25519 <base64(ephemeral share)>``; body = ChaCha20-Poly1305 with a zero
  nonce under ``HKDF-SHA256(ikm=X25519(eph, recipient), salt=eph_share || recipient,
  info="age-encryption.org/v1/X25519")`` of the file key;
* header MAC: HMAC-SHA256 keyed with ``HKDF(ikm=file key, salt="", info="header")`` over the
  header up to and including ``---``;
* payload: 16-byte nonce, then STREAM chunks (64 KiB) of ChaCha20-Poly1305 under
  ``HKDF(ikm=file key, salt=nonce, info="payload")``; nonce = 11-byte big-endian counter
  || last-chunk flag.

Secret handling: the file key and every derived key live in SecretBuffers (HKDF
``derive_into``); the plaintext goes in as a memoryview. The X25519 shared secret is
returned by ``cryptography`` as ``bytes`` (unavoidable; it protects only this one random
file key; it is zeroed in place right after HKDF, see ``core.crypto.transient``).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import secmem
from core.crypto.transient import wipe_bytes
from core.errors import KcmError

__all__ = [
    "AGE_HRP",
    "AgeFormatError",
    "decode_recipient",
    "encode_recipient",
    "encrypt_to_recipient",
    "parse_header",
    "parse_ssh_ed25519",
]

AGE_HRP = "age"
_VERSION_LINE = b"age-encryption.org/v1"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_CHUNK = 64 * 1024
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


class AgeFormatError(KcmError, ValueError):
    """An age recipient or file that does not follow the age v1 format."""

    code = "age-format"


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    ret: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or (value >> frombits):
            raise AgeFormatError("invalid Bech32 data value")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise AgeFormatError("invalid Bech32 padding")
    return ret


def encode_recipient(public_key: bytes) -> str:
    """Encode a 32-byte X25519 public key as an ``age1...`` recipient (Bech32)."""
    if len(public_key) != 32:
        raise AgeFormatError("an X25519 public key is 32 bytes")
    data = _convertbits(public_key, 8, 5, True)
    values = _hrp_expand(AGE_HRP) + data
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return AGE_HRP + "1" + "".join(_BECH32_CHARSET[d] for d in data + checksum)


def decode_recipient(text: str) -> bytes:
    """Decode an ``age1...`` recipient to its 32-byte X25519 public key.

    Raises:
        AgeFormatError: not a valid age X25519 recipient (with the reason).
    """
    s = text.strip()
    if s.upper().startswith("AGE-SECRET-KEY-"):
        raise AgeFormatError("this is an age SECRET key, not a recipient")
    if s != s.lower() and s != s.upper():
        raise AgeFormatError("mixed-case Bech32 string")
    s = s.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s):
        raise AgeFormatError("not a Bech32 string (no separator or checksum)")
    hrp, data_part = s[:pos], s[pos + 1 :]
    if hrp != AGE_HRP:
        raise AgeFormatError(f"Bech32 prefix {hrp!r} is not 'age'")
    try:
        data = [_BECH32_CHARSET.index(c) for c in data_part]
    except ValueError:
        raise AgeFormatError("character outside the Bech32 alphabet") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise AgeFormatError("Bech32 checksum does not match (typo or truncated recipient)")
    raw = bytes(_convertbits(data[:-6], 5, 8, False))
    if len(raw) != 32:
        raise AgeFormatError(f"recipient holds {len(raw)} bytes, an X25519 key is 32")
    return raw


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _hkdf_into(ikm: memoryview | bytes, salt: bytes, info: bytes, out: memoryview) -> None:
    HKDF(algorithm=hashes.SHA256(), length=len(out), salt=salt, info=info).derive_into(ikm, out)


_P25519 = 2**255 - 19
_SSH_INFO = b"age-encryption.org/v1/ssh-ed25519"


def parse_ssh_ed25519(line: str) -> tuple[bytes, bytes]:
    """Parse an ``ssh-ed25519 AAAA... [comment]`` line.

    Returns:
        ``(wire, ed25519_public_key)``: the SSH wire encoding and the 32-byte key.

    Raises:
        AgeFormatError: not a well-formed ssh-ed25519 public key line.
    """
    parts = line.strip().split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise AgeFormatError("not an ssh-ed25519 public key line")
    try:
        wire = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise AgeFormatError("the ssh-ed25519 key is not valid base64") from None
    if (
        len(wire) != 51
        or wire[:4] != b"\x00\x00\x00\x0b"
        or wire[4:15] != b"ssh-ed25519"
        or wire[15:19] != b"\x00\x00\x00\x20"
    ):
        raise AgeFormatError("the ssh-ed25519 key blob is malformed")
    return wire, wire[19:]


def _ed25519_to_x25519(pub: bytes) -> bytes:
    """Birational map of a public Ed25519 point to its X25519 u-coordinate (public data)."""
    y = int.from_bytes(pub, "little") & ((1 << 255) - 1)
    if y >= _P25519 or y == 1:
        raise AgeFormatError("the ssh-ed25519 key is not a valid curve point")
    u = (1 + y) * pow(1 - y, _P25519 - 2, _P25519) % _P25519
    return u.to_bytes(32, "little")


def _x25519(scalar: bytes | memoryview, point: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(
            X25519PublicKey.from_public_bytes(point)
        )
    except ValueError:
        raise AgeFormatError(
            "the recipient is a low-order point (all-zero shared secret): not a real age key"
        ) from None


def _seal(
    stanza_args: bytes,
    shared: bytes,
    salt: bytes,
    info: bytes,
    plaintext: memoryview,
    allow_unlocked: bool = False,
) -> bytes:
    """Common part: wrap a fresh file key with HKDF(shared, salt, info), MAC, payload."""
    if plaintext.nbytes > _CHUNK:
        raise AgeFormatError("only single-chunk payloads (64 KiB) are supported")
    with (
        secmem.SecretBuffer(16 + 32 + 32 + 32, allow_unlocked=allow_unlocked) as keys,
        keys.view() as kv,
    ):
        file_key, wrap_key, mac_key, payload_key = kv[:16], kv[16:48], kv[48:80], kv[80:112]
        keys.fill_random(0, 16)
        try:
            _hkdf_into(shared, salt, info, wrap_key)
        finally:
            wipe_bytes(shared)
        body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
        header = _VERSION_LINE + b"\n-> " + stanza_args + b"\n" + _b64(body) + b"\n---"
        _hkdf_into(file_key, b"", b"header", mac_key)
        mac = hmac.HMAC(mac_key, hashes.SHA256())
        mac.update(header)
        header += b" " + _b64(mac.finalize()) + b"\n"
        nonce = os.urandom(16)  # public
        _hkdf_into(file_key, nonce, b"payload", payload_key)
        chunk = ChaCha20Poly1305(payload_key).encrypt(bytes(11) + b"\x01", plaintext, None)
        for v in (file_key, wrap_key, mac_key, payload_key):
            v.release()
    return header + nonce + chunk


def encrypt_to_recipient(
    recipient: str, plaintext: memoryview, *, allow_unlocked: bool = False
) -> bytes:
    """Encrypt a short secret to one age recipient; returns the binary age file.

    Args:
        recipient: ``age1...`` (X25519 stanza) or ``ssh-ed25519 AAAA...`` (ssh-ed25519
            stanza, as ``age -R`` does for OpenSSH keys).
        plaintext: the secret (a memoryview of locked memory), at most 64 KiB.
        allow_unlocked: demo keyholders only (file key in unlocked memory).

    Returns:
        The age file (public ciphertext).
    """
    if recipient.startswith("ssh-ed25519"):
        return _encrypt_ssh_ed25519(recipient, plaintext, allow_unlocked)
    recip_pub = decode_recipient(recipient)
    eph = X25519PrivateKey.generate()
    eph_share = eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        # cryptography returns the shared secret as bytes: _seal zeroes it in place.
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recip_pub))
    except ValueError:
        raise AgeFormatError(
            "the recipient is a low-order point (all-zero shared secret): not a real age key"
        ) from None
    finally:
        del eph
    return _seal(
        b"X25519 " + _b64(eph_share),
        shared,
        eph_share + recip_pub,
        _X25519_INFO,
        plaintext,
        allow_unlocked,
    )


def _encrypt_ssh_ed25519(line: str, plaintext: memoryview, allow_unlocked: bool) -> bytes:
    wire, ed_pub = parse_ssh_ed25519(line)
    their = _ed25519_to_x25519(ed_pub)
    eph = X25519PrivateKey.generate()
    eph_share = eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(their))
    except ValueError:
        raise AgeFormatError("the ssh-ed25519 key is a low-order point") from None
    finally:
        del eph
    # tweak = HKDF(ikm="", salt=ssh wire key, info=label); shared = X25519(tweak, shared)
    tweak = HKDF(algorithm=hashes.SHA256(), length=32, salt=wire, info=_SSH_INFO).derive(b"")
    try:
        tweaked = _x25519(tweak, shared)
    finally:
        wipe_bytes(shared)
    tag = _b64(hashlib.sha256(wire).digest()[:4])
    args = b"ssh-ed25519 " + tag + b" " + _b64(eph_share)
    return _seal(args, tweaked, eph_share + their, _SSH_INFO, plaintext, allow_unlocked)


def parse_header(data: bytes) -> list[tuple[str, list[str]]]:
    """Parse the stanzas of an age file header (public; no key needed).

    Returns:
        A list of ``(type, args)`` stanzas.

    Raises:
        AgeFormatError: the data is not an age v1 file.
    """
    lines = data.split(b"\n")
    if not lines or lines[0] != _VERSION_LINE:
        raise AgeFormatError("not an age v1 file (missing version line)")
    stanzas: list[tuple[str, list[str]]] = []
    for line in lines[1:]:
        if line.startswith(b"---"):
            return stanzas
        if line.startswith(b"-> "):
            parts = line[3:].decode("ascii", "replace").split(" ")
            stanzas.append((parts[0], parts[1:]))
    raise AgeFormatError("age header has no MAC line")
