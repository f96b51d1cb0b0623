"""SLIP-39 on locked memory: shares, encoding to word indices, split, combine, passphrase.

Representation inside the keyholder:

* a master secret, an encrypted master secret (EMS) and a share *value* are
  :class:`~core.secmem.SecretBuffer` objects;
* a whole share in word form is a SecretBuffer of **word indices, 2 bytes each, big
  endian** (``hi`` in 0..3, ``lo`` in 0..255): 20 words (40 bytes) for a 128-bit secret,
  33 words (66 bytes) for a 256-bit one. Never a ``str``.

Share *metadata* (identifier, extendable flag, iteration exponent, group and member
indices and thresholds) is public and handled as ordinary Python ints.

Bit packing between value bytes and 10-bit words is done one bit at a time with ints
that never exceed 255 (cached by CPython), so no heap int holds secret bits. The
passphrase Feistel runs PBKDF2 in libcrypto on pointers into one locked scratch buffer
(:mod:`core.shamir._ossl`). The digest share uses HMAC-SHA256 the same way; only its
first 4 bytes are used (SLIP-39), all 32 stay in locked memory until wiped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from core.secmem import SecretBuffer, ct_equal
from core.shamir import gf256, rs1024
from core.shamir._mem import alloc
from core.shamir._mem import scratch as _scratch
from core.shamir._ossl import hmac_sha256_into, pbkdf2_sha256_into
from core.shamir.errors import ChecksumError, DigestError, ShareFormatError, Slip39Error

__all__ = [
    "MAX_SHARE_COUNT",
    "Share",
    "ShareParams",
    "combine",
    "customization",
    "decode_share",
    "decrypt_ems",
    "encode_share",
    "encrypt_master",
    "recover_ems",
    "recover_secret",
    "split_ems",
    "split_master",
    "validate_policy",
    "word_count_for",
]

RADIX_BITS: Final = 10
ID_LENGTH_BITS: Final = 15
ITERATION_EXP_BITS: Final = 4
ID_EXP_WORDS: Final = 2
SHARE_PARAM_WORDS: Final = 2
METADATA_WORDS: Final = ID_EXP_WORDS + SHARE_PARAM_WORDS + rs1024.CHECKSUM_WORDS  # 7
MIN_STRENGTH_BYTES: Final = 16
MIN_MNEMONIC_WORDS: Final = METADATA_WORDS + 13  # 20
MAX_SHARE_COUNT: Final = 16
DIGEST_BYTES: Final = 4
BASE_ITERATIONS: Final = 10000
ROUNDS: Final = 4
CUSTOM_ORIG: Final = b"shamir"
CUSTOM_EXT: Final = b"shamir_extendable"


def customization(extendable: bool) -> bytes:
    """The RS1024 customization string for the extendable flag."""
    return CUSTOM_EXT if extendable else CUSTOM_ORIG


def word_count_for(secret_len: int) -> int:
    """Number of words of a share for a secret of ``secret_len`` bytes (20 or 33)."""
    return METADATA_WORDS + -(-secret_len * 8 // RADIX_BITS)


@dataclass(frozen=True)
class ShareParams:
    """Public metadata of one share."""

    identifier: int
    extendable: bool
    iteration_exponent: int
    group_index: int
    group_threshold: int
    group_count: int
    member_index: int
    member_threshold: int

    def label(self) -> str:
        """Human label: ``set 1234, group 1 share 3`` (1-based for people)."""
        return f"set {self.identifier}, group {self.group_index + 1} share {self.member_index + 1}"


class Share:
    """One SLIP-39 share: public :class:`ShareParams` and a secret value buffer.

    The share owns ``value``; :meth:`close` wipes it.
    """

    __slots__ = ("params", "value")

    def __init__(self, params: ShareParams, value: SecretBuffer) -> None:
        self.params = params
        self.value = value

    def close(self) -> None:
        """Wipe the value."""
        self.value.close()

    def __repr__(self) -> str:  # never shows the value
        return f"<Share {self.params.label()}>"


# --------------------------------------------------------------------------- encoding


def _put(mv: memoryview, k: int, idx: int) -> None:
    """Store a PUBLIC word index at word position ``k``."""
    mv[2 * k] = idx >> 8
    mv[2 * k + 1] = idx & 0xFF


def _get(mv: memoryview | bytearray, k: int) -> int:
    """Read a PUBLIC word (metadata words only) as an int."""
    return (mv[2 * k] << 8) | mv[2 * k + 1]


def encode_share(share: Share) -> SecretBuffer:
    """Encode a share as word indices (2 bytes each, checksum included)."""
    p = share.params
    with share.value.view() as value:
        n = len(value)
        value_words = -(-n * 8 // RADIX_BITS)
        total = METADATA_WORDS + value_words
        out = alloc(2 * total)
        with out.view() as mv:
            id_exp = (
                (p.identifier << (ITERATION_EXP_BITS + 1))
                | (int(p.extendable) << ITERATION_EXP_BITS)
                | p.iteration_exponent
            )
            _put(mv, 0, id_exp >> 10)
            _put(mv, 1, id_exp & 0x3FF)
            sp = (
                (p.group_index << 16)
                | ((p.group_threshold - 1) << 12)
                | ((p.group_count - 1) << 8)
                | (p.member_index << 4)
                | (p.member_threshold - 1)
            )
            _put(mv, 2, sp >> 10)
            _put(mv, 3, sp & 0x3FF)
            pad = value_words * RADIX_BITS - n * 8
            base = 2 * (ID_EXP_WORDS + SHARE_PARAM_WORDS)
            _value_to_words(value, mv, base, value_words, pad)
            data_end = 2 * (total - rs1024.CHECKSUM_WORDS)
            rs1024.create_checksum_words(
                customization(p.extendable), mv[:data_end], mv[data_end : 2 * total]
            )
    return out


# Bit packing between value bytes and 10-bit words (2 bytes each: ``hi`` 2 bits, ``lo`` 8).
# The layout depends only on public sizes, so for each (value length, padding) we generate
# once a straight-line function whose every line is ``dst[k] = OR of ((src[i] >> a) & m)
# << b`` with literal i, a, m, b: masks are applied *before* left shifts, so every
# intermediate is an int <= 255 (cached by CPython) and no heap int, bytearray or stream
# buffer ever holds secret bits; there is nothing to wipe. The generated source contains
# only integer literals (see :func:`_fragment_terms`); ``tests/unit/test_slip39_packing.py``
# checks both directions against a bit-by-bit reference for every supported length.

_Packers = tuple[
    Callable[[memoryview | bytearray, memoryview | bytearray], None],
    Callable[[memoryview | bytearray, memoryview | bytearray], int],
]


def _fragment_terms(
    comps: Sequence[tuple[int, int, int]], start: int, stop: int, src: str
) -> list[str]:
    """Terms that assemble stream bits ``[start, stop)`` from components.

    A component ``(pos, width, index)`` holds stream bits ``[pos, pos + width)`` in
    ``src[index]`` (most significant bit first). Each term is an expression <= 255.
    """
    terms = []
    for pos, width, index in comps:
        u, v = max(pos, start), min(pos + width, stop)
        if u >= v:
            continue
        term = f"{src}[{index}]"
        right = pos + width - v
        if right:
            term = f"({term} >> {right})"
        if u > pos or width < 8:  # drop bits above the range (a hi byte has 2 bits)
            term = f"({term} & {(1 << (v - u)) - 1})"
        left = stop - v
        if left:
            term = f"({term} << {left})"
        terms.append(term)
    return terms


@lru_cache(maxsize=16)
def _packers(n: int, base: int, value_words: int, pad: int) -> _Packers:
    """Generated (value -> words, words -> value) functions for one public layout."""
    # stream bit t (t >= pad) is value bit t - pad; value byte q covers [8q+pad, 8q+pad+8)
    vcomps = [(8 * q + pad, 8, q) for q in range(n)]
    wcomps = []
    for j in range(value_words):
        wcomps.append((10 * j, 2, base + 2 * j))
        wcomps.append((10 * j + 2, 8, base + 2 * j + 1))
    lines = ["def to_words(v, w):"]
    for j in range(value_words):
        for k, (a, b) in ((0, (10 * j, 10 * j + 2)), (1, (10 * j + 2, 10 * j + 10))):
            terms = _fragment_terms(vcomps, a, b, "v") or ["0"]
            lines.append(f"    w[{base + 2 * j + k}] = {' | '.join(terms)}")
    lines.append("def to_value(w, v):")
    for q in range(n):
        terms = _fragment_terms(wcomps, 8 * q + pad, 8 * q + pad + 8, "w")
        lines.append(f"    v[{q}] = {' | '.join(terms)}")
    padding = _fragment_terms(wcomps, 0, pad, "w") if pad else []
    lines.append(f"    return {' | '.join(padding) or '0'}")
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec(compile("\n".join(lines), f"<slip39 packing {n} bytes>", "exec"), namespace)
    return namespace["to_words"], namespace["to_value"]


def _value_to_words(
    value: memoryview, mv: memoryview, base: int, value_words: int, pad: int
) -> None:
    """Write ``pad`` zero bits then ``value`` as 10-bit words at ``mv[base:]``."""
    _packers(len(value), base, value_words, pad)[0](value, mv)


def _words_to_value(
    indices: memoryview | bytearray, base: int, value_words: int, pad: int, out: memoryview
) -> int:
    """Read the value from the words at ``indices[base:]``; returns the padding bits (0 = ok)."""
    return _packers(len(out), base, value_words, pad)[1](indices, out)


def _check_indices(mv: memoryview | bytearray) -> None:
    with memoryview(mv)[::2] as high:  # a strided view, not a copy
        if not high or max(high) <= 3:
            return
    for k in range(0, len(mv), 2):
        if mv[k] > 3:
            raise ShareFormatError(f"word {k // 2 + 1} is not a valid word index")


def decode_share(indices: memoryview | bytearray) -> Share:
    """Decode word indices (2 bytes each) into a :class:`Share`; checks everything.

    Raises:
        ShareFormatError: wrong length, bad padding, inconsistent parameters.
        ChecksumError: the RS1024 checksum fails (a word is wrong).
    """
    if len(indices) % 2:
        raise ShareFormatError("a share is a whole number of words")
    words = len(indices) // 2
    if words < MIN_MNEMONIC_WORDS:
        raise ShareFormatError(
            f"a share has at least {MIN_MNEMONIC_WORDS} words; this one has {words}"
        )
    value_words = words - METADATA_WORDS
    pad = (RADIX_BITS * value_words) % 16
    if pad > 8:
        raise ShareFormatError(f"a share of {words} words is not a valid SLIP-39 length")
    _check_indices(indices)
    id_exp = (_get(indices, 0) << 10) | _get(indices, 1)
    identifier = id_exp >> (ITERATION_EXP_BITS + 1)
    extendable = bool((id_exp >> ITERATION_EXP_BITS) & 1)
    exponent = id_exp & ((1 << ITERATION_EXP_BITS) - 1)
    if not rs1024.polymod_words(customization(extendable), indices):
        raise ChecksumError(
            f"the checksum of this share (set {identifier}) does not match: a word is wrong"
        )
    sp = (_get(indices, 2) << 10) | _get(indices, 3)
    gi, gt, gc, mi, mt = (sp >> 16) & 15, (sp >> 12) & 15, (sp >> 8) & 15, (sp >> 4) & 15, sp & 15
    if gt > gc:
        raise ShareFormatError(
            f"share of set {identifier}: group threshold {gt + 1} exceeds group count {gc + 1}"
        )
    nbytes = (RADIX_BITS * value_words - pad) // 8
    value = alloc(nbytes)
    base = 2 * (ID_EXP_WORDS + SHARE_PARAM_WORDS)
    with value.view() as out:
        padbits = _words_to_value(indices, base, value_words, pad, out)
    if padbits:
        value.close()
        raise ShareFormatError(f"share of set {identifier} has invalid padding")
    params = ShareParams(identifier, extendable, exponent, gi, gt + 1, gc + 1, mi, mt + 1)
    return Share(params, value)


# --------------------------------------------------------------------------- cipher


def _check_passphrase(passphrase: memoryview | None) -> None:
    if passphrase is None:
        return
    bad = 0
    for i in range(len(passphrase)):
        c = passphrase[i]
        bad |= int(c < 32 or c > 126)
    if bad:
        raise Slip39Error("the passphrase must contain only printable ASCII characters")


def _feistel(
    src: memoryview,
    out: memoryview,
    passphrase: memoryview | None,
    iteration_exponent: int,
    identifier: int,
    extendable: bool,
    decrypt: bool,
) -> None:
    n = len(src)
    if n % 2 or n < MIN_STRENGTH_BYTES:
        raise Slip39Error("the master secret must be an even number of bytes, at least 16")
    if len(out) != n:
        raise ValueError("output buffer of the wrong size")
    _check_passphrase(passphrase)
    half = n // 2
    plen = 0 if passphrase is None else len(passphrase)
    prefix = b"" if extendable else CUSTOM_ORIG + identifier.to_bytes(2, "big")
    pw0, pw1 = 0, 1 + plen
    s0 = pw1
    s1 = s0 + len(prefix) + half
    l0 = s1
    r0 = l0 + half
    f0 = r0 + half
    iterations = (BASE_ITERATIONS << iteration_exponent) // ROUNDS
    with _scratch(f0 + half) as (scratch, mv):
        if passphrase is not None:
            mv[1:pw1] = passphrase
        mv[s0 : s0 + len(prefix)] = prefix
        mv[l0:r0] = src[:half]
        mv[r0:f0] = src[half:]
        order = range(ROUNDS - 1, -1, -1) if decrypt else range(ROUNDS)
        for i in order:
            mv[0] = i
            mv[s0 + len(prefix) : s1] = mv[r0:f0]
            pbkdf2_sha256_into(scratch, (pw0, pw1), (s0, s1), (f0, f0 + half), iterations)
            for k in range(half):
                mv[f0 + k] ^= mv[l0 + k]  # F := L xor F  (the new R)
            mv[l0:r0] = mv[r0:f0]
            mv[r0:f0] = mv[f0 : f0 + half]
        out[:half] = mv[r0:f0]
        out[half:] = mv[l0:r0]


def encrypt_master(
    master: memoryview,
    out: memoryview,
    passphrase: memoryview | None,
    iteration_exponent: int,
    identifier: int,
    extendable: bool,
) -> None:
    """Encrypt a master secret into the EMS (``out``), SLIP-39 4-round Feistel."""
    _feistel(master, out, passphrase, iteration_exponent, identifier, extendable, False)


def decrypt_ems(
    ems: memoryview,
    out: memoryview,
    passphrase: memoryview | None,
    iteration_exponent: int,
    identifier: int,
    extendable: bool,
) -> None:
    """Decrypt an EMS into the master secret (``out``)."""
    _feistel(ems, out, passphrase, iteration_exponent, identifier, extendable, True)


# --------------------------------------------------------------------------- shamir


def _digest_into(random_part: memoryview, secret: memoryview, out: memoryview) -> None:
    """``HMAC-SHA256(random_part, secret)[:4]`` into ``out`` (4 bytes)."""
    r, s = len(random_part), len(secret)
    with _scratch(r + s + 32) as (scratch, mv):
        mv[:r] = random_part
        mv[r : r + s] = secret
        hmac_sha256_into(scratch, (0, r), (r, r + s), r + s)
        out[:] = mv[r + s : r + s + DIGEST_BYTES]


def _split_secret(threshold: int, count: int, secret: memoryview) -> list[SecretBuffer]:
    """Shamir-split ``secret`` into ``count`` values at x = 0..count-1 (SLIP-39 layout)."""
    if not 1 <= threshold <= count <= MAX_SHARE_COUNT:
        raise Slip39Error("thresholds must satisfy 1 <= threshold <= count <= 16")
    n = len(secret)
    out: list[SecretBuffer] = []
    try:
        if threshold == 1:
            for _ in range(count):
                buf = alloc(n)
                out.append(buf)
                with buf.view() as mv:
                    mv[:] = secret
            return out
        for _ in range(threshold - 2):
            buf = alloc(n)
            buf.fill_random()
            out.append(buf)
        with _scratch(n) as (digest_share, dmv):
            digest_share.fill_random(DIGEST_BYTES, n)
            _digest_into(dmv[DIGEST_BYTES:], secret, dmv[:DIGEST_BYTES])
            with ExitStack() as stack:
                base: list[tuple[int, memoryview | bytearray]] = [
                    (x, stack.enter_context(buf.view())) for x, buf in enumerate(out)
                ]
                base.append((gf256.DIGEST_INDEX, dmv))
                base.append((gf256.SECRET_INDEX, secret))
                targets: list[tuple[int, memoryview | bytearray]] = []
                for x in range(threshold - 2, count):
                    buf = alloc(n)
                    out.append(buf)
                    targets.append((x, stack.enter_context(buf.view())))
                # all remaining shares in one pass: the bit masks of each base byte are
                # computed once per pair of outputs
                gf256.interpolate_many(targets, base)
        return out
    except BaseException:
        for buf in out:
            buf.close()
        raise


def recover_secret(threshold: int, points: Sequence[tuple[int, memoryview]]) -> SecretBuffer:
    """Interpolate the secret at x=255 from ``threshold`` points; check the digest (x=254).

    Raises:
        DigestError: the digest share does not match (a wrong or damaged share).
    """
    n = len(points[0][1])
    if threshold == 1:
        buf = alloc(n)
        with buf.view() as mv:
            mv[:] = points[0][1]
        return buf
    secret = alloc(n)
    try:
        with secret.view() as smv, _scratch(n + DIGEST_BYTES) as (_dig, dmv):
            # secret (x=255) and digest share (x=254) in one pass over the points
            gf256.interpolate_many(
                [(gf256.SECRET_INDEX, smv), (gf256.DIGEST_INDEX, dmv[:n])], points
            )
            _digest_into(dmv[DIGEST_BYTES:n], smv, dmv[n : n + DIGEST_BYTES])
            if not ct_equal(dmv[:DIGEST_BYTES], dmv[n : n + DIGEST_BYTES]):
                raise DigestError(
                    "the shares combine to a wrong result (digest check failed): one of "
                    "them is damaged or belongs to another split"
                )
    except BaseException:
        secret.close()
        raise
    return secret


def validate_policy(group_threshold: int, groups: Sequence[tuple[int, int]]) -> None:
    """Check a sharing policy against SLIP-39's rules; raises :class:`Slip39Error`."""
    if not groups:
        raise Slip39Error("a policy needs at least one group")
    if len(groups) > MAX_SHARE_COUNT:
        raise Slip39Error(f"at most {MAX_SHARE_COUNT} groups are allowed")
    if not 1 <= group_threshold <= len(groups):
        raise Slip39Error(f"the group threshold must be between 1 and {len(groups)}")
    for g, (m, n) in enumerate(groups, 1):
        if not 1 <= m <= n <= MAX_SHARE_COUNT:
            raise Slip39Error(f"group {g}: need 1 <= threshold <= shares <= 16 (got {m} of {n})")
        if m == 1 and n > 1:
            raise Slip39Error(
                f"group {g}: several shares with threshold 1 are copies; use 1 of 1 instead"
            )


def split_ems(
    ems: memoryview,
    *,
    identifier: int,
    extendable: bool,
    iteration_exponent: int,
    group_threshold: int,
    groups: Sequence[tuple[int, int]],
) -> list[list[Share]]:
    """Split an already encrypted master secret into shares (list per group)."""
    validate_policy(group_threshold, groups)
    result: list[list[Share]] = []
    group_values = _split_secret(group_threshold, len(groups), ems)
    try:
        for gi, ((m, n), gbuf) in enumerate(zip(groups, group_values, strict=True)):
            with gbuf.view() as gmv:
                members = _split_secret(m, n, gmv)
            result.append(
                [
                    Share(
                        ShareParams(
                            identifier,
                            extendable,
                            iteration_exponent,
                            gi,
                            group_threshold,
                            len(groups),
                            mi,
                            m,
                        ),
                        buf,
                    )
                    for mi, buf in enumerate(members)
                ]
            )
    except BaseException:
        for group in result:
            for s in group:
                s.close()
        raise
    finally:
        for gbuf in group_values:
            gbuf.close()
    return result


def split_master(
    master: memoryview,
    *,
    group_threshold: int,
    groups: Sequence[tuple[int, int]],
    passphrase: memoryview | None = None,
    extendable: bool = True,
    iteration_exponent: int = 1,
    identifier: int | None = None,
) -> list[list[Share]]:
    """Encrypt ``master`` with the passphrase and split it (SLIP-39 ``generate_mnemonics``).

    Args:
        master: the master secret (16 or 32 bytes, locked memory).
        group_threshold: how many groups are needed.
        groups: ``(member_threshold, member_count)`` per group.
        passphrase: printable ASCII passphrase (locked memory) or None for "".
        extendable: SLIP-39 extendable backup flag (several share sets for one secret).
        iteration_exponent: PBKDF2 cost exponent (0..15).
        identifier: 15-bit set identifier (public); random if None.

    Returns:
        The shares, one list per group; the caller owns them (``close()``).
    """
    validate_policy(group_threshold, groups)
    if not 0 <= iteration_exponent < 16:
        raise Slip39Error("the iteration exponent must be between 0 and 15")
    if identifier is None:
        identifier = secrets.randbits(ID_LENGTH_BITS)  # public
    if not 0 <= identifier < (1 << ID_LENGTH_BITS):
        raise Slip39Error("the identifier has 15 bits")
    with _scratch(len(master)) as (_ems, emv):
        encrypt_master(master, emv, passphrase, iteration_exponent, identifier, extendable)
        return split_ems(
            emv,
            identifier=identifier,
            extendable=extendable,
            iteration_exponent=iteration_exponent,
            group_threshold=group_threshold,
            groups=groups,
        )


def _check_common(shares: Sequence[Share]) -> ShareParams:
    if not shares:
        raise Slip39Error("no shares given")
    first = shares[0].params
    for s in shares[1:]:
        p = s.params
        if p.identifier != first.identifier:
            raise Slip39Error(
                f"shares of different sets: {p.identifier} and {first.identifier}", code="other-set"
            )
        if p.extendable != first.extendable:
            raise Slip39Error("extendable and non-extendable shares mixed", code="extendable-mix")
        if p.iteration_exponent != first.iteration_exponent:
            raise Slip39Error("shares with different iteration exponents", code="mismatch")
        if p.group_threshold != first.group_threshold or p.group_count != first.group_count:
            raise Slip39Error("shares with different group thresholds or counts", code="mismatch")
        if len(s.value) != len(shares[0].value):
            raise Slip39Error("shares of different lengths", code="mismatch")
    return first


def recover_ems(shares: Sequence[Share]) -> tuple[ShareParams, SecretBuffer]:
    """Combine shares into the EMS. Extra shares beyond the thresholds are ignored.

    Raises:
        Slip39Error: mismatched or insufficient shares; DigestError on a bad combination.
    """
    first = _check_common(shares)
    groups: dict[int, list[Share]] = {}
    seen: set[tuple[int, int]] = set()
    for s in shares:
        members = groups.setdefault(s.params.group_index, [])
        if members and members[0].params.member_threshold != s.params.member_threshold:
            raise Slip39Error(
                f"group {s.params.group_index + 1}: shares disagree on the member threshold",
                code="mismatch",
            )
        key = (s.params.group_index, s.params.member_index)
        if key in seen:
            raise Slip39Error(
                f"group {s.params.group_index + 1}: share {s.params.member_index + 1} given twice",
                code="duplicate",
            )
        seen.add(key)
        members.append(s)
    complete = [
        (gi, ms) for gi, ms in sorted(groups.items()) if len(ms) >= ms[0].params.member_threshold
    ]
    if len(complete) < first.group_threshold:
        raise Slip39Error(
            f"not enough complete groups: {len(complete)} of {first.group_threshold} needed",
            code="insufficient",
        )
    group_secrets: list[tuple[int, SecretBuffer]] = []
    try:
        with ExitStack() as stack:
            for gi, ms in complete[: first.group_threshold]:
                mt = ms[0].params.member_threshold
                pts = [
                    (s.params.member_index, stack.enter_context(s.value.view())) for s in ms[:mt]
                ]
                group_secrets.append((gi, recover_secret(mt, pts)))
            gpts = [(gi, stack.enter_context(buf.view())) for gi, buf in group_secrets]
            ems = recover_secret(first.group_threshold, gpts)
    finally:
        for _, buf in group_secrets:
            buf.close()
    return first, ems


def combine(shares: Sequence[Share], passphrase: memoryview | None = None) -> SecretBuffer:
    """Recover the master secret from shares (SLIP-39 ``combine_mnemonics``).

    Returns:
        A new SecretBuffer with the master secret; the caller owns it.
    """
    params, ems = recover_ems(shares)
    with ems:
        master = alloc(len(ems))
        try:
            with ems.view() as emv, master.view() as mmv:
                decrypt_ems(
                    emv, mmv, passphrase, params.iteration_exponent, params.identifier,
                    params.extendable,
                )  # fmt: skip
        except BaseException:
            master.close()
            raise
    return master
