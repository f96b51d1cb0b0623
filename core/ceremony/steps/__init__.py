"""The ceremony's step handlers, one module per family of step kinds.

Each module holds a mixin of :class:`~core.ceremony.steps.base.CeremonyBase`;
:class:`core.ceremony.engine.Ceremony` combines them and dispatches each
:class:`~core.ceremony.model.StepKind` to its handler through an explicit table
(:data:`core.ceremony.engine.HANDLERS`).
"""
