"""Cryptographic building blocks shared by the keyholder, the shares and the seal (no
process, no UI, no ceremony state): the MasterKey fingerprint and signing key."""
