"""Memory scans around sealing (issue 5): what RSA-OAEP's bytes-only API leaves behind.

``RSAPublicKey.encrypt`` takes only ``bytes``: sealing passes a one-call copy of the data
key, and AWS's direct ``RSAES_OAEP_SHA_256`` import a one-call copy of the MasterKey itself
(``core.crypto.transient``), zeroed in place right after. These scans prove the zeroing: after
sealing, every copy of the MasterKey in the keyholder is inside the locked mapping, and no
copy is anywhere in the parent.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.crypto.fingerprint import derive_fingerprint
from tests.memory import memscan

pytestmark = pytest.mark.root


def _extract_master(driver) -> bytes:  # type: ignore[no-untyped-def]
    fp = driver.cmd("fingerprint")["fingerprint"]
    for cand in memscan.locked_secret_candidates(driver.keyholder_pid):
        if derive_fingerprint(memoryview(bytearray(cand))).hex == fp:
            return cand
    raise AssertionError("no locked mapping holds a key with the reported fingerprint")


def test_sealing_leaves_no_masterkey_copy_outside_locked_memory(driver_factory) -> None:  # type: ignore[no-untyped-def]
    d = driver_factory("mlock", plugins=["tests.memory.seal_plugin"])
    d.cmd("generate")
    master = _extract_master(d)
    key = serialization.load_pem_private_key(d.cmd("seal_test_key")["pem"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)

    data_keys = []
    for _ in range(3):
        env = json.loads(base64.b64decode(d.cmd("seal")["envelope"]))
        data_keys.append(key.decrypt(base64.b64decode(env["wrapped_key"]["ciphertext"]), oaep))
    byok = d.cmd("seal_byok")
    assert key.decrypt(base64.b64decode(byok["RSAES_OAEP_SHA_256"]), oaep) == master

    kh = memscan.scan(d.keyholder_pid, {"master": master})
    assert kh.count() >= 1, "the scanner must see the live key"
    assert kh.outside_locked() == [], f"MasterKey copies outside locked memory: {kh.summary()}"
    assert memscan.scan(d.pid, {"master": master}).count() == 0
    dk = memscan.scan(d.keyholder_pid, {f"dk{i}": k for i, k in enumerate(data_keys)})
    # data keys: their SecretBuffers are closed and the bytes copies zeroed
    assert dk.count() == 0, f"data key residues: {dk.summary()}"

    assert d.cmd("wipe") == {"wiped": True}
    assert memscan.scan(d.keyholder_pid, {"master": master}).count() == 0
