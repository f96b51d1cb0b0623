"""The recipient errors: every refusal of a key or a recipients file, with its code
(:mod:`core.codes`)."""

from __future__ import annotations

from core.errors import KcmError


class RecipientError(KcmError, ValueError):
    """A recipient key or recipients file was refused; the message says why."""

    code = "recipient"

class MalformedKey(RecipientError):
    """The key file cannot be parsed in any supported encoding."""

    code = "key-malformed"

class WrongKeyType(RecipientError):
    """The key is of a type this recipient kind cannot use."""

    code = "key-wrong-type"

class WeakKey(RecipientError):
    """The key is too small or has unsafe parameters."""

    code = "key-weak"

class PrivateKeySupplied(RecipientError):
    """A private key was supplied where a public key belongs (it is not stored anywhere)."""

    code = "key-private"

class SymmetricKeySupplied(PrivateKeySupplied):
    """A symmetric (``oct``) key was supplied: secret material that can be no recipient."""

    code = "key-symmetric"

class UnconfirmedRecipient(RecipientError):
    """Sealing was asked for a recipient whose fingerprint no witness confirmed."""

    code = "recipient-unconfirmed"

class FingerprintMismatch(RecipientError):
    """The out-of-band fingerprint does not match the key brought in."""

    code = "fingerprint-mismatch"
