"""Suite-wide settings: determinism and the CI skip gate.

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

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

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
