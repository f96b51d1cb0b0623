"""Benchmark: our SLIP-39 split + recover vs the reference ``shamir-mnemonic``.

Same parameters side by side (3-of-5 and 16 groups of 16-of-16, 256-bit secret, iteration
exponent 0 and 1), best of N interleaved runs after one warm-up each, CPU time
(process_time), ratio ours/reference (target <= 1.0: no slower). Ours ends at word
indices in locked memory (what the keyholder holds), the reference at mnemonic strings
(its public API); both decode from those forms for recovery. Also times the wrong-word
locator (syndrome method) against a naive search of all 33 x 1023 substitutions with a
full checksum each.

Run: ``.venv/bin/python benchmarks/bench_shamir.py`` (``make bench``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import shamir_mnemonic
from shamir_mnemonic import rs1024 as ref_rs1024

from core.secmem import SecretBuffer, ct_equal
from core.shamir import slip39, typo
from core.shamir.wordlist import indices_from_mnemonic, word_index

SECRET = bytes(range(32))


def best(fn: Callable[[], object], runs: int) -> float:
    """Best CPU time (process_time: unaffected by other processes on a shared machine)."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def ours(groups: list[tuple[int, int]], gt: int, e: int) -> None:
    with SecretBuffer(32) as m, m.view() as mv:
        mv[:] = SECRET
        shares = slip39.split_master(mv, group_threshold=gt, groups=groups, iteration_exponent=e)
    encoded = []
    for g in shares:
        for s in g:
            encoded.append(slip39.encode_share(s))
            s.close()
    # recover from the first member_threshold shares of the first gt groups
    chosen = []
    k = 0
    for gi, (m_, n_) in enumerate(groups):
        if gi < gt:
            chosen += encoded[k : k + m_]
        k += n_
    decoded = []
    for buf in chosen:
        with buf.view() as v:
            decoded.append(slip39.decode_share(v))
    with slip39.combine(decoded) as rec, rec.view() as rv:
        assert ct_equal(rv, SECRET)  # no bytes copy of the recovered secret
    for s in decoded:
        s.close()
    for buf in encoded:
        buf.close()


def reference(groups: list[tuple[int, int]], gt: int, e: int) -> None:
    mn = shamir_mnemonic.generate_mnemonics(gt, groups, SECRET, iteration_exponent=e)
    chosen = []
    for gi, (m_, _) in enumerate(groups):
        if gi < gt:
            chosen += mn[gi][:m_]
    assert shamir_mnemonic.combine_mnemonics(chosen) == SECRET


def bench_split_recover() -> None:
    print(f"{'case':<34}{'ours ms':>10}{'ref ms':>10}{'ratio':>8}")
    for name, groups, gt in (
        ("3-of-5", [(3, 5)], 1),
        ("16 groups x 16-of-16", [(16, 16)] * 16, 16),
    ):
        for e in (0, 1):
            runs = 21 if len(groups) == 1 else 9
            # interleaved, best of N: the machine is shared, so load hits both alike; one
            # untimed warm-up each (our first call builds per-layout caches and slab pages,
            # the reference's first call warms its own caches), then the order alternates
            # so neither side always runs right after the other.
            ours(groups, gt, e)
            reference(groups, gt, e)
            t_ours = t_ref = float("inf")
            for i in range(runs):
                pair = [
                    ("ours", lambda g=groups, t=gt, x=e: ours(g, t, x)),
                    ("ref", lambda g=groups, t=gt, x=e: reference(g, t, x)),
                ]
                for who, fn in pair if i % 2 == 0 else pair[::-1]:
                    t = best(fn, 1)
                    if who == "ours":
                        t_ours = min(t_ours, t)
                    else:
                        t_ref = min(t_ref, t)
            print(
                f"{name + f', 256-bit, e={e}':<34}{t_ours * 1e3:>10.1f}{t_ref * 1e3:>10.1f}"
                f"{t_ours / t_ref:>8.2f}"
            )


def bench_typo() -> None:
    rnd = random.Random(5)
    mnemonic = shamir_mnemonic.generate_mnemonics(1, [(3, 5)], SECRET, iteration_exponent=0)[0][0]
    words = mnemonic.split()
    pos = rnd.randrange(33)
    typed = words.copy()
    typed[pos] = "academic" if words[pos] != "academic" else "acid"
    custom = slip39.customization(bool((word_index(words[1]) >> 4) & 1))
    with indices_from_mnemonic(" ".join(typed)) as buf, buf.view() as mv:
        typo.locate_wrong_word(mv)  # build the tables once (done at keyholder start)
        t_syn = best(lambda: typo.locate_wrong_word(mv), 20)

    idx = [word_index(w) for w in typed]

    def naive() -> list[tuple[int, int]]:
        found = []
        for p in range(33):
            for v in range(1024):
                if v != idx[p]:
                    cand = [*idx[:p], v, *idx[p + 1:]]
                    if ref_rs1024.verify_checksum(cand, custom):
                        found.append((p, v))
        return found

    # location rate: every position x 31 random wrong words
    exact = total = 0
    with indices_from_mnemonic(mnemonic) as buf, buf.view() as mv:
        for p in range(33):
            hi, lo = mv[2 * p], mv[2 * p + 1]
            for _ in range(31):
                e = rnd.randrange(1, 1024)
                mv[2 * p], mv[2 * p + 1] = hi ^ (e >> 8), lo ^ (e & 0xFF)
                total += 1
                exact += typo.locate_wrong_word_raw(mv) == [(p, hi, lo)]
            mv[2 * p], mv[2 * p + 1] = hi, lo
    print(f"single wrong word located with exactly one (right) candidate: {exact}/{total}")

    t_naive = best(naive, 1)
    print(
        f"wrong-word location (33 words): syndrome {t_syn * 1e3:.2f} ms, "
        f"naive 33x1023 checksums {t_naive:.2f} s, speed-up x{t_naive / t_syn:.0f}"
    )


if __name__ == "__main__":
    bench_split_recover()
    bench_typo()
