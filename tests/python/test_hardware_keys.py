"""Keys that never leave their chip: ``key=Pkcs11Key(...)`` on a SoftHSM2
token (key generated on the token, CSR signed on the token, certificate
from the dev server's CA) and ``key=SigningCallback(...)`` (a Python
callable; OpenSSL's command line stands in for a secure element's SDK).

Without SoftHSM2, OpenSC or OpenSSL's pkcs11 engine the token tests are
skipped, except in CI (CI=true), where they fail: scripts/setup.sh
installs them."""

import os
import shutil
import subprocess
import threading
import weakref
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer

MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
]
PIN = "3141"
CN = "nhc-py-hsm"


def run(*args: str, env: Optional[dict] = None) -> None:
    subprocess.run(args, check=True, capture_output=True, env=env)


class Token:
    def __init__(self, module: str, directory: Path) -> None:
        self.module = module
        self.dir = directory

    def key(self, **overrides: object) -> "nhc.Pkcs11Key":
        args = dict(module=self.module, pin=PIN)
        args.update(overrides)  # type: ignore[arg-type]
        uri = str(args.pop("uri", "pkcs11:token=nhc-py;object=device;type=private"))
        return nhc.Pkcs11Key(uri, **args)  # type: ignore[arg-type]

    def make_csr(self) -> None:
        """A CSR signed on the token (the key never leaves it), CN ``CN``."""
        conf = self.dir / "openssl.cnf"
        conf.write_text(
            "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n"
            f"[pkcs11]\nMODULE_PATH = {self.module}\n"
        )
        run(
            "openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key",
            f"pkcs11:token=nhc-py;object=device;type=private;pin-value={PIN}",
            "-subj", f"/CN={CN}", "-out", str(self.dir / "device.csr"),
            env={**os.environ, "OPENSSL_CONF": str(conf)},
        )

    def certificate(self, server: DevServer) -> str:
        """The device certificate, issued by the dev server's CA from the CSR."""
        csr = (self.dir / "device.csr").read_text()
        return str(server.control.call("/issue_device", {"cn": CN, "csr": csr})["cert"])


def tools_missing() -> List[str]:
    missing = []
    if not any(Path(m).is_file() for m in MODULES):
        missing.append("libsofthsm2.so (softhsm2)")
    for tool, package in (("softhsm2-util", "softhsm2"), ("pkcs11-tool", "opensc"), ("openssl", "openssl")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({package})")
    if not missing:
        probe = subprocess.run(
            ["openssl", "engine", "pkcs11"], capture_output=True, env={**os.environ, "OPENSSL_CONF": "/dev/null"}
        )
        if probe.returncode != 0:
            missing.append("the OpenSSL pkcs11 engine (libengine-pkcs11-openssl)")
    return missing


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    missing = tools_missing()
    if missing:
        why = f"SoftHSM2 tests need {', '.join(missing)}: run scripts/setup.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    module = next(m for m in MODULES if Path(m).is_file())
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    # Read by SoftHSM2 when this process first loads it (the first Pkcs11Key socket).
    os.environ["SOFTHSM2_CONF"] = str(conf)
    run("softhsm2-util", "--init-token", "--free", "--label", "nhc-py", "--so-pin", "11223344", "--pin", PIN)
    run(
        "pkcs11-tool", "--module", module, "--token-label", "nhc-py", "--login", "--pin", PIN,
        "--keypairgen", "--key-type", "EC:prime256v1", "--label", "device", "--id", "01",
    )
    token = Token(module, directory)
    # While nhc-py is the only token: libp11 0.4.12 (OpenSSL's pkcs11 engine)
    # finds keys only on the first slot, and SoftHSM2 orders slots randomly.
    token.make_csr()
    # Never logged in to by these tests: PKCS#11 login state is per process and
    # token, so a wrong PIN is only noticed on a token not yet logged in to.
    run("softhsm2-util", "--init-token", "--free", "--label", "nhc-py-other", "--so-pin", "11223344", "--pin", PIN)
    yield token


def joins(server: DevServer, cert: str, key: "Union[nhc.Pkcs11Key, nhc.SigningCallback]") -> List[object]:
    """Joins `device` with this key; the identities the server then sees."""
    with nhc.Socket(server.wss_url, ca=server.ca, cert=cert, key=key, **FAST) as sock:
        sock.connect()
        sock.wait_connected(WAIT)
        sock.channel("device", params={"nerves_fw_uuid": "u-1"}).join()
        return [c["identity"] for c in server.control.connections()]


def test_a_token_key_joins_over_mutual_tls(server: DevServer, token: Token) -> None:
    assert joins(server, token.certificate(server), token.key()) == [CN]


def test_the_pin_comes_from_a_file_or_the_environment(server: DevServer, token: Token, tmp_path: Path) -> None:
    cert = token.certificate(server)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    joins(server, cert, token.key(pin=None, pin_file=pin_file))
    os.environ["NHC_PY_TEST_PIN"] = PIN
    joins(server, cert, token.key(pin=None, pin_env="NHC_PY_TEST_PIN"))


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (dict(pin="0000", uri="pkcs11:token=nhc-py-other;object=device"), nhc.TlsError, "CKR_PIN_INCORRECT"),
        (dict(module="/nonexistent/libnothing.so"), nhc.TlsError, "does not exist"),
        (dict(uri="pkcs11:token=nhc-py;label=device"), nhc.InvalidArgument, 'unsupported path attribute "label"'),
        (dict(uri="pkcs11:token=nhc-py;object=none"), nhc.TlsError, 'no private key labelled "none"'),
        (dict(uri="pkcs11:token=gone;object=device"), nhc.TlsError, "is present (is it inserted?)"),
    ],
)
def test_every_token_mistake_is_a_clear_error(
    server: DevServer, token: Token, overrides: dict, error: type, message: str
) -> None:
    with pytest.raises(error) as raised:
        nhc.Socket(server.wss_url, ca=server.ca, cert=server.device_cert, key=token.key(**overrides))
    assert message in str(raised.value)
    assert "0000" not in str(raised.value)


def test_the_pin_is_not_in_the_repr(token: Token) -> None:
    assert PIN not in repr(token.key())
    with pytest.raises(nhc.InvalidArgument):
        nhc.Pkcs11Key("pkcs11:object=x", pin="1", pin_env="X")


def der_to_raw(der: bytes) -> bytes:
    """ECDSA-Sig-Value (DER) to raw r || s."""
    assert der[0] == 0x30
    pos = 2
    out = b""
    for _ in range(2):
        assert der[pos] == 0x02
        length = der[pos + 1]
        value = der[pos + 2 : pos + 2 + length].lstrip(b"\0")
        out += value.rjust(32, b"\0")
        pos += 2 + length
    return out


def openssl_signer(key_file: str, tmp: Path) -> Tuple[List[str], Callable[[str, bytes, bytes], bytes]]:
    calls: List[str] = []

    def sign(algorithm: str, message: bytes, digest: bytes) -> bytes:
        calls.append(algorithm)
        path = tmp / f"digest-{threading.get_ident()}"
        path.write_bytes(digest)
        der = subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-inkey", key_file, "-in", str(path)], check=True, capture_output=True
        ).stdout
        return der_to_raw(der)

    return calls, sign


def test_a_python_callable_signs(server: DevServer, tmp_path: Path) -> None:
    calls, sign = openssl_signer(server.device_key, tmp_path)
    assert joins(server, server.device_cert, nhc.SigningCallback(sign, key_type="ec-p256")) == ["nhc-demo-0001"]
    assert calls and set(calls) == {"ecdsa_secp256r1_sha256"}


def test_close_lets_go_of_the_callable(server: DevServer, tmp_path: Path) -> None:
    """Once close() returns the library holds no reference to the signer,
    so an SDK session it wraps can be torn down right after."""
    _, sign = openssl_signer(server.device_key, tmp_path)

    class Element:
        def __call__(self, algorithm: str, message: bytes, digest: bytes) -> bytes:
            return sign(algorithm, message, digest)

    element = Element()
    released = weakref.ref(element)
    key = nhc.SigningCallback(element, key_type="ec-p256")
    sock = nhc.Socket(server.wss_url, ca=server.ca, cert=server.device_cert, key=key, **FAST)
    sock.connect()
    sock.wait_connected(WAIT)
    sock.close()
    del sock, key, element
    assert released() is None


def test_a_callable_that_raises_is_a_tls_error(server: DevServer) -> None:
    def broken(algorithm: str, message: bytes, digest: bytes) -> bytes:
        raise RuntimeError("element unplugged")

    states: "List[nhc.StateChange]" = []
    done = threading.Event()

    def on_state(change: "nhc.StateChange") -> None:
        states.append(change)
        if change.error is not None and "element unplugged" in str(change.error):
            done.set()

    key = nhc.SigningCallback(broken, key_type="ec-p256")
    with nhc.Socket(server.wss_url, ca=server.ca, cert=server.device_cert, key=key, on_state=on_state, **FAST) as sock:
        sock.connect()
        assert done.wait(WAIT), states
    with pytest.raises(nhc.InvalidArgument):
        nhc.SigningCallback(broken, key_type="ed25519")  # type: ignore[arg-type]
