"""Shared test support: the custodian terminal, keyholder ports (the double and the real
one), SoftHSM2 tokens, the UI's fake session, SLIP-39 reference shares. Imported as
``tests.support.<module>``; the fixtures are registered by the root ``conftest.py``."""
