"""Issue 12, PoC 1: a PKCS#11 module from a script or a medium must never be loaded into the
keyholder (its constructor runs next to the MasterKey).

The PoC against the old code: ``card_module = "/media/.../libcardos-pkcs11.so"`` passed
``script check`` (absolute, no ".."), the engine passed it through and the keyholder
``dlopen``-ed it; the library's constructor walked the heap to the MasterKey. Here the
"library on the stick" is a copy of the real SoftHSM2 module on a mounted filesystem:
loading it runs its initialisers, which is all an attacker needs. The tests check the
keyholder's own memory map (``/proc/PID/maps``) to see what it loaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.carriers.pkcs11 import DEFAULT_MODULES
from core.ceremony.script import check_script
from core.errors import KcmError
from core.keyholder import ops_carriers
from core.keyholder.client import KeyholderClient
from tests.support.stick import mounted_stick, needs_root

pytestmark = [needs_root, pytest.mark.root]
SOFTHSM = os.path.realpath(DEFAULT_MODULES["softhsm2"])
ROOT = Path(__file__).resolve().parents[2]


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture
def evil_lib(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not os.path.exists(SOFTHSM):
        pytest.skip("SoftHSM2 is not installed")
    with mounted_stick(tmp_path) as stick:
        lib = stick.path / "libcardos-pkcs11.so"
        shutil.copy(SOFTHSM, lib)
        os.chmod(lib, 0o755)
        yield lib


def test_script_naming_a_module_on_the_medium_is_refused(tmp_path: Path, evil_lib: Path) -> None:
    text = (ROOT / "ceremony_scripts" / "unseal-and-seal.toml").read_text()
    assert text.count('carriers = ["typed", "qr", "card"]') == 1
    text = text.replace(
        'carriers = ["typed", "qr", "card"]',
        f'carriers = ["typed", "qr", "card"]\ncard_module = "{evil_lib}"',
    )
    script = tmp_path / "evil.toml"
    script.write_text(text)
    problems = check_script(script)
    assert any(
        "is a path: scripts name a PKCS#11 module" in p.message and "keyholder" in p.message
        for p in problems
    ), [str(p) for p in problems]


def test_keyholder_refuses_a_module_path_even_when_asked_directly(evil_lib: Path) -> None:
    with KeyholderClient.start(allow_unlocked=True) as kh:
        kh.generate_master()  # the secret the library would be after
        for opcode, extra in (
            (ops_carriers.CARD_LIST, {}),
            (ops_carriers.CARD_RESCAN, {}),
            (ops_carriers.CARD_READ_SHARE, {"serial": "1"}),
            (ops_carriers.CARD_PROVISION, {"serial": "1"}),
        ):
            err: KcmError | None = None
            try:
                kh.call(opcode, module=str(evil_lib), **extra)
            except KcmError as exc:
                err = exc
            assert str(evil_lib) not in _maps(kh.pid), "the keyholder loaded the stick's library"
            assert err is not None and err.code == "card-module-refused", err
            assert "not one this keyholder was started with" in err.message
        assert kh.status()["master_held"] is True  # nothing lost


def test_a_launcher_tricked_into_a_medium_path_is_still_refused(evil_lib: Path) -> None:
    """Defence in depth: even a keyholder *started* with the stick's path refuses to load
    it (not root-owned-and-on-the-root-filesystem)."""
    with KeyholderClient.start(allow_unlocked=True, pkcs11_modules={"opensc": str(evil_lib)}) as kh:
        with pytest.raises(KcmError, match="not on the root filesystem") as info:
            kh.call(ops_carriers.CARD_LIST, module="opensc")
        assert info.value.code.startswith("card-module")
        assert str(evil_lib) not in _maps(kh.pid)


def test_module_file_checks(tmp_path: Path) -> None:
    from core.carriers import modules

    if not os.path.exists(SOFTHSM):
        pytest.skip("SoftHSM2 is not installed")
    # the real module passes, through the symlink Debian installs
    real, _st = modules.check_module_file(DEFAULT_MODULES["softhsm2"])
    assert real == SOFTHSM
    # a private root-owned folder on the root filesystem (tmp_path's parents are 0755/1777)
    base = Path(f"/var/lib/kcm-test-{os.getpid()}")
    base.mkdir(mode=0o755)
    try:
        lib = base / "lib.so"
        shutil.copy(SOFTHSM, lib)
        os.chmod(lib, 0o644)
        opened = modules.open_module(str(lib))
        os.close(opened.fd)
        os.chown(lib, 65534, 65534)
        with pytest.raises(modules.ModuleRefused, match="owned by uid 65534, not root"):
            modules.check_module_file(str(lib))
        os.chown(lib, 0, 0)
        os.chmod(lib, 0o664)
        with pytest.raises(modules.ModuleRefused, match="writable by its group"):
            modules.check_module_file(str(lib))
        os.chmod(lib, 0o644)
        os.chmod(base, 0o777)
        with pytest.raises(modules.ModuleRefused, match=f"its folder {base} is writable by others"):
            modules.check_module_file(str(lib))
        os.chmod(base, 0o755)
        # /tmp (sticky, world-writable) can never hold a module
        in_tmp = tmp_path / "lib.so"
        shutil.copy(SOFTHSM, in_tmp)
        # (refused for its sticky world-writable folder, or for being on a scratch mount)
        with pytest.raises(modules.ModuleRefused, match=r"writable by others|not on the root"):
            modules.check_module_file(str(in_tmp))
    finally:
        shutil.rmtree(base)


def test_module_swapped_after_the_check_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time of check to time of use: the file opened must be the one checked."""
    from core.carriers import modules

    if not os.path.exists(SOFTHSM):
        pytest.skip("SoftHSM2 is not installed")
    base = Path(f"/var/lib/kcm-test-swap-{os.getpid()}")
    base.mkdir(mode=0o755)
    try:
        lib = base / "lib.so"
        shutil.copy(SOFTHSM, lib)
        other = base / "other.so"
        shutil.copy(SOFTHSM, other)
        real_check = modules.check_module_file

        def check_then_swap(path: str) -> tuple[str, os.stat_result]:
            out = real_check(path)
            os.replace(other, lib)  # an attacker wins the race
            return out

        monkeypatch.setattr(modules, "check_module_file", check_then_swap)
        with pytest.raises(modules.ModuleRefused, match="replaced while it was being checked"):
            modules.open_module(str(lib))
    finally:
        shutil.rmtree(base)


def test_allowed_module_is_loaded_from_the_checked_descriptor() -> None:
    from core.carriers import modules

    if not os.path.exists(SOFTHSM):
        pytest.skip("SoftHSM2 is not installed")
    with KeyholderClient.start(allow_unlocked=True, pkcs11_modules=("softhsm2",)) as kh:
        assert kh.info["pkcs11_modules"] == {"softhsm2": DEFAULT_MODULES["softhsm2"]}
        kh.call(ops_carriers.CARD_LIST, module="softhsm2")
        maps = _maps(kh.pid)
        assert SOFTHSM in maps  # the checked file (the kernel names the inode's path)
        # the launcher default: real modules only; the software token only in a demo
        assert modules.default_names(demo=False) == ("opensc", "ykcs11")
        assert "softhsm2" in modules.default_names(demo=True)
    with KeyholderClient.start() as kh:
        assert "softhsm2" not in kh.info["pkcs11_modules"]
        with pytest.raises(KcmError, match="not one this keyholder was started with"):
            kh.call(ops_carriers.CARD_LIST, module="softhsm2")
