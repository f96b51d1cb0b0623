"""The custodian's QR grid card: copied by hand from the screen and photographed
(the corpus of benchmarks/gridcard_corpus.py), and the digits a handheld scanner types."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import gridcard_corpus as gridcards
from core.carriers import qr

__all__ = ["card_digits", "card_photo", "gridcards", "read_screen"]


def read_screen(screen: bytes) -> np.ndarray:
    """The squares of a QR shown on the custodian terminal (all its parts)."""
    return gridcards.read_screen(screen)


def card_photo(modules: np.ndarray, path: Path, seed: int) -> Path:
    """The custodian copies the squares onto a grid card (by hand: uneven strokes, a missed
    square now and then); the card is photographed with care. The share is random, so the
    photo is a careful one: the reader's limits are measured in tests/unit/test_gridcard.py."""
    rnd = random.Random(seed)
    words = 33 if modules.shape[0] == 33 else 20
    gridcards.photograph(gridcards.hand_fill(modules, rnd, words=words), rnd, strength=0.3).save(path)
    return path


def card_digits(photo: Path) -> bytes:
    """The digits a handheld scanner would type for the code on a grid card (test side:
    read through the decode chain, whose grid-card stage reads hand-filled squares)."""
    from core.carriers import imagedecode

    decoded = imagedecode.decode_image(Image.open(photo))
    with qr.indices_to_payload(decoded.indices) as payload, payload.view() as pv:
        digits = bytes(pv)
    decoded.indices.close()
    return digits
