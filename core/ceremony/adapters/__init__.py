"""The real implementations of the engine's ports (:mod:`core.ceremony.ports`): the
keyholder process, the export medium, the recipients' key files, the preflight checks."""
