"""The bad-certificate matrix through Python: every way the TLS material can be
wrong raises `TlsError` with a message saying which one it is (the same
matrix as tests/bad_certificates.rs on the Rust side)."""

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer


class Case:
    def __init__(self, name: str, url: str, tls: Dict[str, Any], phrase: str, early: bool) -> None:
        self.name = name
        self.url = url
        self.tls = tls
        self.phrase = phrase
        # True: the Socket constructor refuses it; False: the connection attempt fails.
        self.early = early


def expired_client_certificate(server: DevServer, out: Path) -> Optional[Dict[str, str]]:
    """A device certificate signed by the dev CA, valid only in 2000 (made with `openssl ca`)."""
    if shutil.which("openssl") is None:
        return None
    pki = Path(server.pki_dir)
    key, csr, cert = out / "expired-device-key.pem", out / "expired-device.csr", out / "expired-device.pem"
    (out / "index.txt").write_text("")
    conf = out / "ca.cnf"
    conf.write_text(
        "[ca]\ndefault_ca = dev\n"
        "[dev]\n"
        f"database = {out / 'index.txt'}\nnew_certs_dir = {out}\n"
        f"certificate = {pki / 'ca.pem'}\nprivate_key = {pki / 'ca-key.pem'}\n"
        "default_md = sha256\npolicy = any\nrand_serial = yes\nunique_subject = no\n"
        # Extensions make it X.509 v3; webpki refuses v1 certificates outright.
        "x509_extensions = leaf\n"
        "[any]\ncommonName = supplied\n"
        "[leaf]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n"
    )
    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=nhc-expired-0001")
    run("openssl", "ca", "-batch", "-config", str(conf), "-in", str(csr), "-out", str(cert),
        "-startdate", "20000101000000Z", "-enddate", "20010101000000Z", "-notext")
    return {"cert": str(cert), "key": str(key)}


@pytest.fixture
def expired_server(server: DevServer) -> Iterator[int]:
    """A TLS listener presenting the dev PKI's expired server certificate; it only handshakes."""
    pki = Path(server.pki_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "expired-server.pem", pki / "expired-server-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(WAIT)
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(WAIT)
        listener.close()


def cases(server: DevServer, tmp: Path, expired_port: int) -> List[Case]:
    pki = Path(server.pki_dir)
    device = {"ca": server.ca, "cert": server.device_cert, "key": server.device_key}
    garbage = tmp / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    bad_base64 = tmp / "bad-base64.pem"
    bad_base64.write_text("-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n")
    missing = str(tmp / "missing.pem")
    wss = server.wss_url
    found = [
        Case("wrong CA", wss, {**device, "ca": str(pki / "other-ca.pem")},
             f"server certificate is not signed by any CA in {pki / 'other-ca.pem'}", early=False),
        Case("expired server certificate", f"wss://127.0.0.1:{expired_port}/socket/websocket", device,
             "server certificate has expired (valid until 2001-01-01", early=False),
        Case("wrong hostname", wss.replace("localhost", "127.0.0.1"),
             {**device, "server_name": "devices.example.com"},
             'server certificate is not valid for host "devices.example.com" (it names localhost', early=False),
        Case("rogue client certificate", wss,
             {**device, "cert": str(pki / "rogue.pem"), "key": str(pki / "rogue-key.pem")},
             "rejected our client certificate (alert: unknown_ca); the server does not trust its issuer",
             early=False),
        Case("unreadable CA file", wss, {**device, "ca": missing},
             f"cannot read CA file {missing}: No such file", early=True),
        Case("unreadable certificate file", wss, {**device, "cert": missing},
             f"cannot read client certificate file {missing}: No such file", early=True),
        Case("unreadable key file", wss, {**device, "key": missing},
             f"cannot read private key file {missing}: No such file", early=True),
        Case("garbage instead of PEM", wss, {**device, "cert": str(garbage)},
             f"{garbage} contains no PEM certificate", early=True),
        Case("PEM with broken base64", wss, {**device, "cert": str(bad_base64)},
             f"{bad_base64} is not valid PEM: a PEM block contains invalid base64", early=True),
        Case("garbage instead of a key", wss, {**device, "key": str(garbage)},
             f"{garbage} contains no private key", early=True),
        Case("key not matching the certificate", wss, {**device, "key": str(pki / "rogue-key.pem")},
             f"the private key in {pki / 'rogue-key.pem'} does not match the certificate in {server.device_cert}",
             early=True),
    ]
    expired_client = expired_client_certificate(server, tmp)
    if expired_client is not None:
        found.append(Case("expired client certificate", wss, {**device, **expired_client},
                          "rejected our client certificate (alert: certificate_expired); renew", early=False))
    return found


def failure(case: Case) -> nhc.TlsError:
    try:
        sock = nhc.Socket(case.url, **FAST, **case.tls)
    except nhc.TlsError as e:
        assert case.early, f"{case.name}: refused by the constructor: {e}"
        return e
    assert not case.early, f"{case.name}: the constructor accepted it"
    with sock:
        sock.connect()
        with pytest.raises(nhc.TlsError) as raised:
            sock.wait_connected(WAIT)
        return raised.value


def test_every_bad_certificate_gets_its_own_tls_error(
    server: DevServer, tmp_path: Path, expired_server: int
) -> None:
    matrix = cases(server, tmp_path, expired_server)
    messages = []
    for case in matrix:
        message = str(failure(case))
        assert case.phrase in message, f"{case.name}: {message!r} lacks {case.phrase!r}"
        messages.append(message)
    for i, case in enumerate(matrix):
        for j, message in enumerate(messages):
            assert i == j or case.phrase not in message, (
                f"{case.name!r} and {matrix[j].name!r} are indistinguishable: {message}"
            )
