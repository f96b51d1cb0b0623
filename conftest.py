"""The root conftest: suite-wide settings (determinism, the CI skip gate) and the shared
fixtures (``kms_pem``, ``workspace``, ``terminal``, ``keyholder``). Shared helpers live in
``tests/support/`` (imported as ``tests.support.<module>``); no test edits ``sys.path`` or
imports another test module.

- Hypothesis profiles: ``ci`` (the default, and what ``make test`` selects) is derandomized
  (examples derived from each test's source, the same on every run), keeps no example
  database (nothing written to the repo) and has no wall-clock deadline or too-slow health
  check (a loaded 2-core machine must not fail a test). ``explore`` draws fresh random
  examples, 5x as many, for sweeps: ``HYPOTHESIS_PROFILE=explore``.
- Randomness that is not the point of a test comes from one seed: pytest-randomly's
  ``--randomly-seed`` (fixed in ``make test``) seeds ``random`` and numpy before each test,
  and the fixture below seeds the SLIP-39 reference package's share generator per test from
  the same seed and the test's id. The product's own randomness (the keyholder's getrandom)
  is never seeded: tests must hold for every value it draws.
- ``tests/strict_skips.py``: under ``CI=true`` as root, a skipped test fails the run.
"""

from __future__ import annotations

import faulthandler
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.custodian import CustodianTerminal
from tests.support.engine import make_workspace, rsa_pem
from tests.support.keyholders import KeyholderKit, kit

pytest_plugins = ("tests.strict_skips",)

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=500,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def run_seed(config: pytest.Config) -> int:
    """The run's seed: pytest-randomly's ``--randomly-seed`` when it is loaded, else 0."""
    try:
        seed = config.getoption("randomly_seed")
    except ValueError:
        return 0
    return seed if isinstance(seed, int) else 0


#: A test (with its fixtures) that runs longer than this is hung: every thread's stack is
#: printed and the run exits non-zero at once, instead of stalling CI until its own limit.
#: (A reveal that waits for Enter on a pty nobody types on is the usual cause.)
HANG_SECONDS = int(os.environ.get("KCM_TEST_HANG_SECONDS", "600"))


_HANG_REPORT: list[object] = []


def _hang_report(config: pytest.Config) -> object:
    """The real stderr (pytest's fd capture has replaced fd 2 while a test runs)."""
    if not _HANG_REPORT:
        fd = 2
        capman = config.pluginmanager.getplugin("capturemanager")
        multi = getattr(capman, "_global_capturing", None)
        saved = getattr(getattr(multi, "err", None), "targetfd_save", None)
        if isinstance(saved, int):
            fd = saved
        _HANG_REPORT.append(os.fdopen(os.dup(fd), "w"))
    return _HANG_REPORT[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    out = _hang_report(item.config)
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=out)  # type: ignore[arg-type]
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Reference mnemonics made at import time (parameters) come from the run seed too, so
    every run with one seed collects the same tests, and so do pytest-xdist's workers."""
    try:
        from shamir_mnemonic import shamir
    except ImportError:
        yield
        return
    saved = shamir.RANDOM_BYTES
    shamir.RANDOM_BYTES = random.Random(f"{run_seed(session.config)}:collect").randbytes
    try:
        yield
    finally:
        shamir.RANDOM_BYTES = saved


@pytest.fixture(autouse=True)
def _seed_reference_slip39(request: pytest.FixtureRequest) -> Iterator[None]:
    """The SLIP-39 reference package draws identifiers and share polynomials from
    ``secrets``: seed it per test (run seed + test id) so a reference mnemonic is the same
    on every run with the same seed, and differs between seeds in a sweep."""
    try:
        from shamir_mnemonic import shamir
    except ImportError:  # the reference package is a test extra
        yield
        return
    rnd = random.Random(f"{run_seed(request.config)}:{request.node.nodeid}")
    saved = shamir.RANDOM_BYTES
    shamir.RANDOM_BYTES = rnd.randbytes
    try:
        yield
    finally:
        shamir.RANDOM_BYTES = saved


@pytest.fixture(scope="session")
def kms_pem() -> bytes:
    """The KMS recipient's public key (RSA-3072) of the shipped scripts."""
    return rsa_pem()


@pytest.fixture
def workspace(tmp_path: Path, kms_pem: bytes) -> Path:
    """A ceremony medium holding the recipients' public keys the shipped scripts name."""
    return make_workspace(tmp_path / "ws", kms_pem)


@pytest.fixture
def terminal() -> Iterator[CustodianTerminal]:
    """The custodian terminal (a pty) the keyholder shows shares on."""
    t = CustodianTerminal()
    yield t
    t.close()


@pytest.fixture(params=["double", "real"])
def keyholder(request: pytest.FixtureRequest) -> Iterator[KeyholderKit]:
    """Keyholder ports for an engine test: the test double, then the real keyholder process
    (real SLIP-39 shares, typed entry, commitments). Only the tests where the keyholder's
    answers matter use it, so the real process does not double the suite's time."""
    with kit(str(request.param)) as k:
        yield k
