"""Share carriers: QR codes (payload, rendering, image decoding, keyboard-wedge scanners)
and PKCS#11 smart cards. Every function that touches a plaintext share runs in the
keyholder process and keeps the share in :class:`core.secmem.SecretBuffer` objects."""
