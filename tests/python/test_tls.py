"""wss:// with client certificates, from files, paths and memory."""

from pathlib import Path
from typing import Any

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer


def identity_after_join(server: DevServer, **tls: Any) -> object:
    with nhc.Socket(server.wss_url, **FAST, **tls) as sock:
        sock.connect()
        sock.wait_connected(WAIT)
        sock.channel("device", params={"nerves_fw_uuid": "u-1"}).join()
        conns = server.control.connections()
        assert len(conns) == 1, conns
        return conns[0]["identity"]


def test_client_certificate_from_files(server: DevServer) -> None:
    identity = identity_after_join(server, ca=server.ca, cert=server.device_cert, key=server.device_key)
    assert identity


def test_client_certificate_from_paths_and_memory(server: DevServer) -> None:
    identity = identity_after_join(
        server,
        ca=Path(server.ca),
        cert=Path(server.device_cert).read_bytes(),
        key=Path(server.device_key).read_text(),
    )
    assert identity


def test_server_name_override(server: DevServer) -> None:
    url = server.wss_url.replace("localhost", "127.0.0.1")
    sock = nhc.Socket(
        url,
        ca=server.ca,
        cert=server.device_cert,
        key=server.device_key,
        server_name="localhost",
        **FAST,
    )
    sock.connect()
    sock.wait_connected(WAIT)
    sock.close()


def test_invalid_pem_is_a_tls_error(server: DevServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(nhc.TlsError):
        nhc.Socket(server.wss_url, ca=server.ca, cert=junk, key=server.device_key)
    with pytest.raises(nhc.TlsError):
        nhc.Socket(server.wss_url, ca=b"no pem here", cert=server.device_cert, key=server.device_key)


def test_key_that_does_not_match_the_certificate(server: DevServer) -> None:
    # The CA certificate with the device key: a mismatch the library refuses early.
    with pytest.raises(nhc.TlsError):
        nhc.Socket(server.wss_url, ca=server.ca, cert=server.ca, key=server.device_key)
