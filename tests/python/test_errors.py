"""Every exception of the package, raised where it belongs."""

import math

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer


def test_hierarchy() -> None:
    for cls in (
        nhc.TlsError,
        nhc.AuthError,
        nhc.ConnectError,
        nhc.ProtocolError,
        nhc.JoinError,
        nhc.PushError,
        nhc.PushTimeout,
        nhc.ClosedError,
        nhc.InvalidArgument,
        nhc.BufferFull,
        nhc.ForkedError,
    ):
        assert issubclass(cls, nhc.Error), cls
        assert cls.__doc__
    assert issubclass(nhc.InvalidArgument, ValueError)
    assert issubclass(nhc.PushTimeout, TimeoutError)


@pytest.mark.parametrize(
    "url",
    ["", "http://localhost/socket/websocket", "not a url", "ws://"],
)
def test_bad_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(nhc.InvalidArgument):
        nhc.Socket(url)


def test_a_vsn_other_than_the_librarys_is_refused() -> None:
    with pytest.raises(nhc.InvalidArgument, match='vsn="1.0.0" does not match the json serializer'):
        nhc.Socket("ws://localhost/socket/websocket?vsn=1.0.0")
    with pytest.raises(nhc.InvalidArgument, match="set the serializer option"):
        nhc.Socket("ws://localhost/socket/websocket", params={"vsn": "3.0.0"})
    with pytest.raises(nhc.InvalidArgument, match="set the serializer option"):
        nhc.Device("ws://localhost/socket/websocket?vsn=3.0.0")
    with pytest.raises(nhc.InvalidArgument, match="msgpack serializer"):
        nhc.Socket("ws://localhost/socket/websocket?vsn=2.0.0", serializer="msgpack")
    with pytest.raises(nhc.InvalidArgument, match='serializer "cbor" is not known'):
        nhc.Socket("ws://localhost/socket/websocket", serializer="cbor")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"connect_timeout": -1.0},
        {"heartbeat_interval": math.nan},
        {"backoff_initial": 5.0, "backoff_max": 1.0},
        {"backoff_jitter": 11.0},
        {"outbound_capacity": 0},
        {"headers": {"bad name": "x"}},
        {"headers": {"x-ok": "line\r\nbreak"}},
        {"headers": [("only-one",)]},
        {"delivery": "sometimes"},
        {"on_state": 42},
        {"ca": 42},
    ],
)
def test_bad_options_are_invalid_arguments(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(nhc.InvalidArgument) as info:
        nhc.Socket("ws://localhost/socket/websocket", **kwargs)
    assert isinstance(info.value, ValueError)


def test_bad_channel_arguments(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url)
    with pytest.raises(nhc.InvalidArgument):
        sock.channel("")
    with pytest.raises(nhc.InvalidArgument):
        sock.channel("room:x", params={"x": math.inf})
    chan = sock.channel("room:x")
    with pytest.raises(nhc.InvalidArgument):
        chan.push("e", {"not json": object()})
    with pytest.raises(nhc.InvalidArgument):
        chan.push("", {})
    with pytest.raises(nhc.InvalidArgument):
        chan.push("e", {}, timeout=0)
    with pytest.raises(nhc.InvalidArgument):
        chan.on("", print)
    with pytest.raises(nhc.InvalidArgument):
        chan.on("e", "not callable")  # type: ignore[call-overload]
    sock.close()


def test_push_error_carries_status_and_response(sock: nhc.Socket) -> None:
    chan = sock.channel("room:err")
    chan.join()
    with pytest.raises(nhc.PushError) as info:
        chan.push("error_invalid", {"why": "test"})
    assert info.value.status == "error"
    assert info.value.response == {"why": "test"}


def test_push_timeout(sock: nhc.Socket) -> None:
    chan = sock.channel("room:timeout")
    chan.join()
    with pytest.raises(nhc.PushTimeout):
        chan.push("noreply_please", {}, timeout=0.2)
    with pytest.raises(TimeoutError):
        chan.push("noreply_please", {}, timeout=0.2)


def test_join_refused(sock: nhc.Socket) -> None:
    chan = sock.channel("unknown:topic")
    with pytest.raises(nhc.JoinError) as info:
        chan.join()
    assert info.value.reason == "refused"
    assert info.value.response == {"reason": "unmatched topic"}
    assert not chan.joined
    chan.leave()  # stops the retries


@pytest.mark.parametrize("topic", ["device", "console", "extensions"])
def test_an_anonymous_socket_cannot_join_device_topics(sock: nhc.Socket, topic: str) -> None:
    # As on NervesHub, whose anonymous socket has no device topics.
    chan = sock.channel(topic)
    with pytest.raises(nhc.JoinError) as info:
        chan.join()
    assert info.value.response == {"reason": "unmatched topic"}
    chan.leave()  # stops the retries


def test_an_anonymous_device_socket_is_refused_with_the_reason(server: DevServer) -> None:
    sock = nhc.Socket(server.device_socket_url, **FAST)
    sock.connect()
    with pytest.raises(nhc.AuthError) as info:
        sock.wait_connected(timeout=WAIT)
    reason = "no certificate pair or shared secrets connection settings were provided"
    assert (info.value.status, info.value.reason) == (401, reason)
    sock.close()


def test_join_reply_scripted_by_the_server(server: DevServer, sock: nhc.Socket) -> None:
    server.control.join_reply("room:scripted", "error", {"reason": "not today"})
    with pytest.raises(nhc.JoinError) as info:
        sock.channel("room:scripted").join()
    assert info.value.response == {"reason": "not today"}


def test_join_timeout_names_the_connection_error() -> None:
    sock = nhc.Socket("ws://127.0.0.1:9/socket/websocket", **FAST)
    sock.connect()
    with pytest.raises(nhc.JoinError) as info:
        sock.channel("room:x").join(timeout=0.3)
    assert info.value.reason == "timeout"
    assert isinstance(info.value.__cause__, nhc.ConnectError)
    sock.close()


def test_connect_error() -> None:
    sock = nhc.Socket("ws://127.0.0.1:9/socket/websocket", **FAST)
    sock.connect()
    with pytest.raises(nhc.ConnectError):
        sock.wait_connected(WAIT)
    sock.close()


def test_wait_connected_timeout() -> None:
    # An address that drops packets would take the full connect timeout;
    # a socket never told to connect simply never connects.
    sock = nhc.Socket("ws://127.0.0.1:9/socket/websocket")
    with pytest.raises(nhc.ConnectError, match="not connected within"):
        sock.wait_connected(timeout=0.2)
    sock.close()


def test_closed_error(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, **FAST)
    sock.connect()
    chan = sock.channel("room:closed")
    chan.join()
    sock.close()
    with pytest.raises(nhc.ClosedError):
        chan.push("x", {})
    with pytest.raises(nhc.ClosedError):
        chan.join()
    with pytest.raises(nhc.ClosedError):
        sock.connect()
    with pytest.raises(nhc.ClosedError):
        sock.wait_connected(1.0)
    sock.close()  # twice is fine


def test_pending_push_fails_when_the_socket_closes(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url)
    chan = sock.channel("room:pending")
    import threading

    threading.Timer(0.2, sock.close).start()
    with pytest.raises(nhc.ClosedError):
        chan.push("never_sent", {}, timeout=WAIT)


def test_buffer_full(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, outbound_capacity=2)
    chan = sock.channel("room:full")
    # Not connected: pushes wait for the join in the bounded buffer.
    chan.join_nowait(lambda ok, value: None)
    chan.cast("one", {}, timeout=WAIT)
    chan.cast("two", {}, timeout=WAIT)
    with pytest.raises(nhc.BufferFull):
        chan.cast("three", {})
    with pytest.raises(nhc.BufferFull):
        chan.push("four", {})
    sock.close()


def test_auth_error_without_client_certificate(server: DevServer) -> None:
    sock = nhc.Socket(server.wss_url, ca=server.ca, **FAST)
    sock.connect()
    with pytest.raises(nhc.AuthError) as info:
        sock.wait_connected(WAIT)
    assert info.value.status == 401
    assert info.value.reason
    sock.close()


def test_tls_error_for_a_missing_file(server: DevServer) -> None:
    with pytest.raises(nhc.TlsError):
        nhc.Socket(server.wss_url, ca="/nonexistent/ca.pem")


def test_tls_error_for_an_untrusted_server(server: DevServer) -> None:
    # The device certificate is no CA of the server's certificate.
    sock = nhc.Socket(
        server.wss_url,
        ca=server.device_cert,
        cert=server.device_cert,
        key=server.device_key,
        **FAST,
    )
    sock.connect()
    with pytest.raises(nhc.TlsError):
        sock.wait_connected(WAIT)
    sock.close()


def test_protocol_error_reported_to_on_state(server: DevServer) -> None:
    import queue

    changes: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, on_state=changes.put, **FAST)
    sock.connect()
    sock.wait_connected(WAIT)
    sock.channel("room:proto").join()
    server.control.raw("this is not a phoenix message")
    while True:
        change = changes.get(timeout=WAIT)
        if change.state == "protocol_error":
            break
    assert isinstance(change.error, nhc.ProtocolError)
    sock.close()


def test_wait_connected_in_a_retry_loop_waits_for_each_attempt() -> None:
    sock = nhc.Socket("ws://127.0.0.1:9/socket/websocket", backoff_initial=0.05, backoff_max=0.05)
    sock.connect()
    import time

    started = time.monotonic()
    for _ in range(4):
        with pytest.raises(nhc.ConnectError):
            sock.wait_connected(WAIT)
    # Each failure is raised once: four calls span at least three back-offs.
    assert time.monotonic() - started >= 0.1
    sock.close()
