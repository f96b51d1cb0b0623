"""The ceremony: scripts, the headless engine, its ports and adapters.

The TUI (or a test) drives a :class:`Ceremony`; the engine drives the keyholder through the
narrow :class:`Keyholder` port, writes public files through the :class:`Exporter` port and
records every event in the tamper-evident :class:`~core.journal.Journal` before it returns.
The engine never holds a secret: shares go from the carrier to the keyholder as opaque
payloads, and only public facts come back (set id, share index, KCV, manifests, sealed
envelopes).

API for the UI
--------------

Create::

    c = Ceremony.load(script_path, workspace, keyholder,
                      exporter=None, recipients=None, preflight=None, clock=None)
        # validates the script (raises ScriptError listing every problem), creates
        # WORKSPACE/ceremonies/<ceremony_id>/journal.db and records ceremony.started

State to display::

    c.script                 the Script (roles, policy, acts)
    c.ceremony_id, c.practice (True: show PRACTICE on every screen)
    c.state                  CeremonyState.RUNNING | COMPLETED | ABORTED
    c.steps                  list[StepRun], in order
    c.current_step           the StepRun to show (None when finished)
    c.progress               (done, total)
    c.manifest               the active public share-set manifest (dict) or None
    c.manifest_choices()     active share sets this ceremony may collect/check, for a
                             chooser: [{file, set_id, ceremony_id, practice}] (PRACTICE
                             sets only in a practice ceremony, real sets only in a real one)
    c.final_hash, c.final_words, c.exports   once completed or aborted
    c.subscribe(fn)          fn(event: core.journal.Event) after every journal event

    StepRun: act_id, act_title, step_id, kind (StepKind), title, instruction,
             required_roles, state (StepState: PENDING/ACTIVE/DONE/FAILED/SKIPPED),
             acks (role ids), exceptions (list[dict]), results (public dict),
             error (message of the last failure), performed (action done),
             shown (custodians whose share was shown), display (per-kind UI data).

Intents (each raises :class:`EngineError` with a message for the room when not allowed;
a failure of the action itself marks the step FAILED instead, keeps all earlier work and is
undone by :meth:`Ceremony.retry`)::

    c.perform(**inputs)      run the current step's action (see "Step kinds" below)
    c.acknowledge(role)      a required role signs the step off
    c.withdraw_ack(role)     the role takes it back before the step is done (box unticked)
    c.confirm(witness, matches=True, method="words")
                             verify-fingerprint / verify-kcv: the named witness compares
    c.show_share(custodian, display=None, *, card=None, override_reason=None)
                             distribute-shares, one custodian at a time, on the carrier the
                             script declares (see "Share carriers" below)
    c.add_share(carrier, payload)                 collect-shares / check-shares
    c.scanner_key(key, t_us) collect-/check-shares: one key press of a wedge QR scanner
    c.rescan_cards(module=None)                   the keyholder's PKCS#11 module looks for
                             cards again (SoftHSM2 sees only tokens present at its start)
    c.complete_step()        when performed + acknowledged: DONE, next step becomes ACTIVE
    c.skip_act(reason, who)  skip the rest of an optional act
    c.record_exception(text, who)                 at any time (exception sheet)
    c.retry()                a FAILED step becomes ACTIVE again
    c.abort(reason, who)     wipe the keyholder, record why, close the journal

Step kinds (``perform`` inputs and what must happen before ``complete_step``):

==================  ========================================================================
instruction,        nothing to perform; acknowledgments only
summary
checklist           ``perform(checked=[item indices])``: every item must be ticked
attendance          ``perform(present=[role ids])``: every role the step lists must be present
preflight           ``perform()``: runs the preflight port; a FAIL fails the step
verify-fingerprint  ``perform()`` shows the subject's fingerprint (``display``); then
                    ``confirm(witness, matches)``
generate            ``perform()``: new MasterKey in the keyholder; KCV in ``results``
verify-kcv          ``perform()`` shows the KCV (and the manifest's expected KCV); ``confirm``;
                    for a key rebuilt NOT VERIFIED (no manifest fingerprint) the keyholder
                    checks the KCV the witness confirmed (``confirm_kcv``) before sealing
distribute-shares   ``perform()`` splits (once); ``show_share`` + ``acknowledge`` per custodian
collect-shares      ``perform(manifest=None)`` starts recovery; ``add_share`` until complete
check-shares        ``perform(manifest=None)``; ``add_share`` checks one share at a time
                    against the manifest's commitments (any carrier; nothing is recovered)
recover             ``perform()``: rebuild the key, compare its KCV with the manifest (no
                    fingerprint in it: ``verified`` False, NOT VERIFIED: seal and
                    distribute-shares refuse until a verify-kcv witness confirmed it)
seal                ``perform()``: one envelope per recipient (recipients must be confirmed),
                    then the signed seal manifest (exported with the envelopes)
export              ``perform()``: writes the listed files through the exporter
byok                ``perform(window_start_utc=...)`` (AWS/GCP; else ``perform()``) reads the
                    provider's wrapping key and shows its fingerprint (``display``);
                    ``confirm(witness, matches, out_of_band=None)``; ``perform()`` again: the
                    keyholder checks the confirmation against the key, wraps the MasterKey,
                    and the import files are written to the export medium
wipe                ``perform()``: the keyholder wipes every secret but the MasterKey signing
                    key, which then signs only the closed journal and the transcript
                    (:mod:`core.ceremony.records`)
==================  ========================================================================

Share carriers
--------------

Distribution (``show_share``): the step's ``carriers`` table names each custodian's carrier
(``c.share_carriers()``; default ``screen``): ``screen`` shows the words on the custodian
terminal (typed later or written on paper), ``qr`` shows a share QR there, ``card`` needs
``card=CardAccess(module=None, serial=None, pin=<view of the UI's locked PIN buffer>)``: a
key is generated on the card, the share is written, read back and checked against its
manifest commitment; the card serial and key fingerprint go into the manifest (rewritten in
``manifests/``; ``c.manifest``), the journal and ``run.display["cards"]``. A card that keeps
no data object (step ``card_data_object = false``, or the card refuses one) gets a sealed
share file (public) in ``workspace/card-shares/`` and ``c.card_files``, exported with the
manifest. ``c.list_cards(module=None)`` lists the cards in the readers;
``c.rescan_cards(module=None)`` makes the keyholder re-initialise the PKCS#11 module first
(SoftHSM2 and some modules only see tokens present when they were loaded; readers with
pcscd report new cards without it) and returns the same list.

Collection (``add_share``): ``typed`` (word views), ``card`` (:class:`CardAccess`: module,
serial, PIN view; a serial not in the manifest is refused before the card is touched),
``qr-file`` (image path), ``qr-camera`` (:class:`QRCamera`, ``replay`` for recorded frames),
``scanner`` (``[(one-byte view, t_us), ...]``, or :meth:`Ceremony.scanner_key` key by key).
A script's ``qr`` allows the three QR ways (``c.carrier_allowed(carrier)``). Errors of the
card/QR layer raise :class:`CarrierRefusedError` (a :class:`ShareRefusedError` with ``code``,
e.g. ``card-pin-incorrect``, ``card-wrong-card``, ``card-removed``, ``qr-not-found``):
the step stays ACTIVE, every share collected (or handed out) so far is kept; retry. A share
of another set (typed or read by any carrier) is refused as a :class:`ShareRefusedError`
with ``code`` ``other-set`` and ``set_id`` (the share's set); when a manifest the engine
knows names that set in ``supersedes``, the message says which set superseded it.

Checking (check-shares, ``add_share`` with the same carriers and payloads; the scanner also
key by key with :meth:`Ceremony.scanner_key`): the keyholder reads the share, checks it
against the manifest's salted commitment and wipes it at once; only the verdict comes back
(``ok``, ``set_id``, ``group``, ``index``, ``message``, ``source`` and for cards
``card_serial``/``key_fingerprint``) and is recorded in the journal. Nothing enters a
recovery. A share that does not match raises :class:`ShareRefusedError` (``code``
``commitment``, or ``other-set`` naming the share's set, or the set that superseded it).

The workspace (ceremony media; the demo uses a folder) holds ``recipients/`` (public keys
brought in), ``manifests/set-<id>.json`` (public share-set manifests; a manifest whose set is
named in a later manifest's ``supersedes`` is superseded; a practice ceremony writes and uses
only ``manifests/PRACTICE-set-<id>.json``, a real ceremony never uses those: see
:func:`is_practice_manifest`), ``card-shares/`` (sealed share
files of cards without data objects), ``ceremonies/<id>/`` (journal,
JSON Lines, transcript) and, with the default exporter, ``exports/<folder>/``. Every
access to it goes through :mod:`core.ceremony.workspace` (directory descriptors, no link
followed: the workspace is a medium someone else prepared). Manifests are signed by the
MasterKey signing key and refused when their signature does not verify; the closed
journal and the transcript are signed too (``c.journal_signature``; unsigned when no key
was held).

Package layout
--------------

``model`` (the script's vocabulary: step kinds, carriers, displays, roles),
``source`` (TOML text and source map), ``validate``, ``script`` (load and build),
``errors``, ``ports`` (what the engine needs), ``state`` (step runs and the read-only
progress views), ``manifests``, ``records`` (signed records), ``workspace``,
``facts`` (pure helpers), ``steps/`` (one mixin per family of step kinds),
``engine`` (lifecycle and the explicit dispatch table), ``adapters/`` (the keyholder
process, the export medium, the recipients' keys, the preflight checks).
See docs/architecture.md.
"""
