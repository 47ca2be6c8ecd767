"""Redirects of the websocket upgrade from Python, against the dev server's
load balancer paths: two redirects (/lb/2/...) are followed, with the NH1
signature and through the proxy; a third (/lb/3/...) and one from wss to
ws (/lb-plain/...) are ConnectError states saying why, retried."""

import queue
from typing import Any

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer, get
from test_proxy import proxy_url, tunnels


def behind(url: str, prefix: str) -> str:
    """`url` with its socket path behind the load balancer's `prefix`."""
    for path in ("/device-socket/websocket", "/socket/websocket"):
        if path in url:
            return url.replace(path, f"/{prefix}{path}", 1)
    raise AssertionError(url)


def test_two_redirects_are_followed_with_the_signature(server: DevServer) -> None:
    auth = server.device_auth("py-lb-2")
    auth["url"] = behind(auth["url"], "lb/2")
    device = nhc.Device(**auth, **FAST)
    try:
        device.connect()
        device.wait_joined(timeout=WAIT)
        identities = [c["identity"] for c in server.control.connections()]
        assert identities == ["py-lb-2"]
    finally:
        device.close()


def test_each_hop_goes_through_the_proxy(server: DevServer) -> None:
    sock = nhc.Socket(behind(server.ws_url, "lb/2"), **FAST, proxy=proxy_url(server))
    try:
        sock.connect()
        sock.channel("test:lb-proxy").join(timeout=WAIT)
    finally:
        sock.close()
    assert [t["status"] for t in tunnels(server)] == [200, 200, 200]


def first_failure(url: str, **options: Any) -> nhc.StateChange:
    """The first disconnected state of a socket on `url`; it is retried."""
    states: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(url, **FAST, on_state=states.put, **options)
    try:
        sock.connect()
        while True:
            change: nhc.StateChange = get(states)
            assert change.state != "connected", change
            if change.state == "disconnected":
                assert change.reconnect_in is not None, change
                return change
    finally:
        sock.close()


def test_a_third_redirect_is_refused(server: DevServer) -> None:
    change = first_failure(behind(server.ws_url, "lb/3"))
    assert isinstance(change.error, nhc.ConnectError), change
    assert "more than 2 redirects" in str(change.error)
    assert server.control.connections() == []


def test_a_redirect_from_wss_to_ws_is_refused(server: DevServer) -> None:
    tls = dict(ca=server.ca, cert=server.device_cert, key=server.device_key)
    change = first_failure(behind(server.wss_url, "lb-plain"), **tls)
    assert isinstance(change.error, nhc.ConnectError), change
    assert "from TLS to plain text" in str(change.error)
    assert server.control.connections() == []
