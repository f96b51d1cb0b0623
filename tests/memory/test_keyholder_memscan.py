"""The judge: memory scans of the keyholder and of its parent (issue 2).

With the mlock backend (forced here so that root can see inside the locked pages), the
scanner first reads the MasterKey out of the keyholder's locked, no-dump mapping and proves
it is the key by recomputing the fingerprint the keyholder reported. Then it counts every
encoding of that key in both processes: while the key is live, every copy must be inside
the locked mapping; after wipe and at the moment of a SIGTERM exit there must be none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from core import secmem
from core.crypto.fingerprint import derive_fingerprint
from tests.memory import memscan

pytestmark = pytest.mark.root


def _extract_master(driver) -> bytes:  # type: ignore[no-untyped-def]
    fp = driver.cmd("fingerprint")["fingerprint"]
    for cand in memscan.locked_secret_candidates(driver.keyholder_pid):
        if derive_fingerprint(memoryview(bytearray(cand))).hex == fp:
            return cand
    raise AssertionError("no locked mapping holds a key with the reported fingerprint")


def test_positive_control_finds_an_unwiped_key() -> None:
    """A key kept in a bytes object (no wipe) is found, in several encodings."""
    if not memscan.is_root():
        pytest.skip("needs root")
    key = os.urandom(32)
    code = textwrap.dedent(
        f"""
        import sys
        key = bytes.fromhex({key.hex()!r})
        as_hex = key.hex()
        as_int = int.from_bytes(key, "big")
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        result = memscan.scan(proc.pid, {"key": key})
        encs = {h.encoding for h in result.hits}
        assert "raw" in encs and "hex" in encs and "int-big" in encs, result.summary()
        assert result.outside_locked(), "an unwiped key in ordinary memory must count as outside"
    finally:
        proc.kill()
        proc.wait()


def test_live_key_only_in_locked_mapping_and_gone_after_wipe(driver_factory) -> None:  # type: ignore[no-untyped-def]
    d = driver_factory("mlock")
    gen = d.cmd("generate")
    assert gen["locked"] is True
    key = _extract_master(d)
    live = memscan.scan(d.keyholder_pid, {"master": key})
    assert live.count() >= 1, "the scanner must see the live key (else it proves nothing)"
    assert live.outside_locked() == [], f"copies outside locked memory: {live.outside_locked()}"
    parent = memscan.scan(d.pid, {"master": key})
    assert parent.count() == 0, f"the parent holds the key: {parent.summary()}"

    assert d.cmd("wipe") == {"wiped": True}
    after = memscan.scan(d.keyholder_pid, {"master": key})
    assert after.count() == 0, after.summary()
    assert memscan.scan(d.pid, {"master": key}).count() == 0


def test_sigterm_wipes_before_exit_and_exits_143(driver_factory) -> None:  # type: ignore[no-untyped-def]
    d = driver_factory("mlock")
    d.cmd("generate")
    key = _extract_master(d)
    with memscan.trap_exit(d.keyholder_pid) as wait_for_exit_stop:
        d.send_only("term")  # the driver sends SIGTERM and waits for the exit status
        wait_for_exit_stop()
        at_exit = memscan.scan(d.keyholder_pid, {"master": key})
        assert at_exit.bytes_scanned > 1_000_000, "the exit-stopped process must still have its memory"
        assert at_exit.count() == 0, f"copies at the moment of exit: {at_exit.summary()}"
    reply = d._read()
    assert reply["returncode"] == 143


def test_memfd_secret_pages_are_unreadable_even_to_root(driver_factory) -> None:  # type: ignore[no-untyped-def]
    if secmem.backend() != "memfd_secret":
        pytest.skip("this kernel does not offer memfd_secret")
    d = driver_factory("memfd_secret")
    d.cmd("generate")
    maps = memscan.read_mappings(d.keyholder_pid)
    secret_maps = [m for m in maps if m.secretmem]
    assert secret_maps, "the key must live in a secretmem mapping"
    fd = os.open(f"/proc/{d.keyholder_pid}/mem", os.O_RDONLY)
    try:
        for m in secret_maps:
            with pytest.raises(OSError):
                os.pread(fd, 32, m.start)
    finally:
        os.close(fd)


def test_keyholder_process_hardening_read_back_from_proc(driver_factory) -> None:  # type: ignore[no-untyped-def]
    d = driver_factory("mlock")
    d.cmd("generate")
    pid = d.keyholder_pid
    limits = open(f"/proc/{pid}/limits").read()
    core_line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core_line.split()[4:6] == ["0", "0"], core_line
    status = open(f"/proc/{pid}/status").read()
    vmlck = int(next(line for line in status.splitlines() if line.startswith("VmLck:")).split()[1])
    assert vmlck > 0, "memory must be locked"
    # the key's mapping is locked and excluded from core dumps
    fp = d.cmd("fingerprint")["fingerprint"]
    for m in memscan.read_mappings(pid):
        if m.dontdump and m.end - m.start == 4096:
            data = open(f"/proc/{pid}/mem", "rb", buffering=0)
            data.seek(m.start)
            cand = data.read(32)
            data.close()
            if derive_fingerprint(memoryview(bytearray(cand))).hex == fp:
                assert m.locked and m.dontdump
                break
    else:
        raise AssertionError("key mapping not found")
    assert d.info["hardening"]["not_dumpable"] is True
    assert d.info["hardening"]["mlockall"] is True  # we are root here


def test_keyholder_is_not_dumpable_read_back_without_ptrace_capability(driver_factory) -> None:  # type: ignore[no-untyped-def]
    """PR_SET_DUMPABLE 0, read back from outside: a process without CAP_SYS_PTRACE (root
    minus that one capability, via setpriv) can open the dumpable parent's
    /proc/PID/mem but not the keyholder's."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    drop = ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"]
    # parent and keyholder run with the same reduced capabilities as the reader, so that
    # only dumpability decides
    d = driver_factory("mlock", prefix=drop)

    def readable(pid: int) -> bool:
        r = subprocess.run(
            [*drop, sys.executable, "-c", f"open('/proc/{pid}/mem', 'rb')"],
            capture_output=True,
        )
        return r.returncode == 0

    assert readable(d.pid), "control: the (dumpable) parent must be readable"
    assert not readable(d.keyholder_pid), "the keyholder must not be dumpable"


def test_signing_key_kept_after_the_wipe_is_locked_then_gone(driver_factory) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: the wipe step keeps only the MasterKey-derived signing seed (to sign the
    closed journal and the transcript). While kept it is only in locked memory and the
    MasterKey is gone; after the two closing signatures no copy of either is left."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from core.crypto.fingerprint import FINGERPRINT_INFO, FINGERPRINT_SALT

    d = driver_factory("mlock", plugins=["tests.memory.records_plugin"])
    d.cmd("generate")
    key = _extract_master(d)
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=FINGERPRINT_SALT, info=FINGERPRINT_INFO
    ).derive(key)
    kept = d.cmd("wipe_keep")
    assert kept["signing_key_kept"] is True
    scan = memscan.scan(d.keyholder_pid, {"master": key, "seed": seed})
    assert not [h for h in scan.hits if h.secret == "master"], scan.summary()
    assert [h for h in scan.hits if h.secret == "seed"], "the scanner must see the kept seed"
    assert scan.outside_locked() == [], f"copies outside locked memory: {scan.outside_locked()}"
    assert d.cmd("sign journal-final-hash") == {"signed": True, "left": True}
    assert d.cmd("sign ceremony-transcript") == {"signed": True, "left": False}
    after = memscan.scan(d.keyholder_pid, {"master": key, "seed": seed})
    assert after.count() == 0, after.summary()
    assert memscan.scan(d.pid, {"master": key, "seed": seed}).count() == 0
