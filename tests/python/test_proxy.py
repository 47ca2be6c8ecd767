"""HTTP CONNECT proxies from Python: the dev server's proxy given as a
keyword, taken from http_proxy (in a child process, since the environment
is the process's), bypassed and switched off; a proxy that wants
credentials raises ProxyError states and lets a device through with them;
a device's firmware download goes through its socket's proxy, and
survives the proxy dropping the tunnel."""

import os
import queue
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, ROOT, WAIT, DevServer, get


def proxy_url(server: DevServer) -> str:
    return str(server.control.call("/proxy")["url"])


def tunnels(server: DevServer) -> List[Dict[str, Any]]:
    return list(server.control.call("/proxy")["tunnels"])


def with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def joined_socket(server: DevServer, **options: Any) -> nhc.Socket:
    sock = nhc.Socket(server.ws_url, **FAST, **options)
    sock.connect()
    chan = sock.channel("test:proxy")
    chan.join(timeout=WAIT)
    return sock


def test_an_explicit_proxy_carries_the_socket(server: DevServer) -> None:
    sock = joined_socket(server, proxy=proxy_url(server), proxy_from_env=False)
    try:
        seen = tunnels(server)
        assert len(seen) == 1 and seen[0]["status"] == 200
        assert seen[0]["to_client"] > 0 and seen[0]["to_server"] > 0
    finally:
        sock.close()
    bypass = joined_socket(server, proxy=proxy_url(server), no_proxy="127.0.0.1")
    bypass.close()
    assert len(tunnels(server)) == 1


def test_a_proxy_wanting_credentials(server: DevServer) -> None:
    server.control.call("/proxy", {"credentials": "bob:py-s3cret"})
    states: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, **FAST, proxy=proxy_url(server), on_state=states.put)
    try:
        sock.connect()
        while True:
            change = get(states)
            if change.state == "disconnected":
                break
        assert isinstance(change.error, nhc.ProxyError), change
        assert isinstance(change.error, nhc.ConnectError)
        assert change.error.status == 407
        assert "requires authentication" in str(change.error)
        assert change.reconnect_in is not None
    finally:
        sock.close()
    good = with_credentials(proxy_url(server), "bob", "py-s3cret")
    sock = joined_socket(server, proxy=good)
    sock.close()
    assert tunnels(server)[-1]["credentials_sent"] is True
    with pytest.raises(nhc.InvalidArgument) as err:
        nhc.Socket(server.ws_url, proxy="socks5://bob:py-s3cret@p:1080")
    assert "only http://" in str(err.value) and "py-s3cret" not in str(err.value)


def test_a_device_downloads_through_its_proxy_despite_cuts(server: DevServer, tmp_path: Path) -> None:
    fw = server.control.call("/firmware", {"name": "py-proxy", "size": 600_000, "seed": 4})
    device = nhc.Device(
        **server.device_auth("py-proxy-1"),
        **FAST,
        proxy=proxy_url(server),
        proxy_from_env=False,
    )
    offers: "queue.Queue[Any]" = queue.Queue()
    device.on("update", offers.put)
    try:
        device.connect()
        device.wait_joined(timeout=WAIT)
        server.control.call("/proxy", {"cut_after_bytes": 200_000, "cuts": 1})
        assert server.control.push("device", "update", fw["update"]) == 1
        update = get(offers)
        target = tmp_path / "next.fw"
        device.apply_update(update, path=target, retry_delay=0.01)
        device.wait_update(timeout=WAIT * 3)
        assert len(target.read_bytes()) == 600_000
    finally:
        device.close()
    firmware_tunnels = [t for t in tunnels(server) if t["to_client"] > 100_000]
    assert [t["cut"] for t in firmware_tunnels] == [True, False], tunnels(server)


CHILD = textwrap.dedent(
    """
    import sys
    import nerves_hub_channel as nhc
    url, off = sys.argv[1], sys.argv[2] == "off"
    sock = nhc.Socket(url, proxy_from_env=not off, backoff_initial=0.01, backoff_max=0.1)
    sock.connect()
    sock.channel("test:proxy-env").join(timeout=10)
    sock.close()
    """
)


def run_child(server: DevServer, env: Dict[str, str], off: bool = False) -> None:
    clean = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, server.ws_url, "off" if off else "on"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_environment_chooses_the_proxy_unless_switched_off(server: DevServer) -> None:
    url = proxy_url(server)
    run_child(server, {"http_proxy": url})
    assert len(tunnels(server)) == 1
    run_child(server, {"http_proxy": url, "no_proxy": "localhost,127.0.0.1"})
    run_child(server, {"http_proxy": url}, off=True)
    # HTTPS_PROXY is for wss:// only: a ws:// URL ignores it.
    run_child(server, {"HTTPS_PROXY": url})
    assert len(tunnels(server)) == 1
