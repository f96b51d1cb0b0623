"""SLIP-39 Shamir shares on locked memory (GF(2^8), RS1024, passphrase Feistel).

Everything secret (master secrets, share values, word indices of shares) lives in
:class:`core.secmem.SecretBuffer` objects or in ``bytearray`` temporaries wiped with
:func:`core.secmem.memset`. Only single-byte Python ints (cached by CPython) ever carry
secret-derived values; public data (identifiers, indices, thresholds) uses ordinary ints.
"""
