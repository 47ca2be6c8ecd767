"""Polled delivery: callbacks run inside dispatch(), on the caller's thread."""

import select
import threading
from typing import Any, List, Tuple

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer


def pump_until(sock: nhc.Socket, done: "threading.Event") -> None:
    """A select() main loop around the socket's descriptor."""
    fd = sock.fileno()
    for _ in range(1000):
        if done.is_set():
            return
        readable, _, _ = select.select([fd], [], [], WAIT)
        assert readable, "no event within the wait"
        sock.dispatch()
    raise AssertionError("too many events")


def test_select_loop(server: DevServer) -> None:
    me = threading.get_ident()
    seen: List[Tuple[str, Any, int]] = []
    joined = threading.Event()
    got = threading.Event()
    closed = threading.Event()

    def on_state(change: Any) -> None:
        seen.append(("state", change.state, threading.get_ident()))
        if change.state == "closed":
            closed.set()

    sock = nhc.Socket(server.ws_url, delivery="polled", on_state=on_state, **FAST)
    assert sock.delivery == "polled"
    chan = sock.channel("room:polled")

    def hello(payload: Any) -> None:
        seen.append(("hello", payload, threading.get_ident()))
        got.set()

    def on_join(ok: bool, value: Any) -> None:
        seen.append(("join", ok, threading.get_ident()))
        joined.set()

    chan.on("hello", hello)
    sock.connect()
    chan.join_nowait(on_join)
    pump_until(sock, joined)
    server.control.push("room:polled", "hello", {"x": 1})
    pump_until(sock, got)
    assert ("join", True, me) in seen
    assert ("hello", {"x": 1}, me) in seen
    assert ("state", "connected", me) in seen
    sock.close()
    # The channel's own end can be dispatched before the socket's Closed
    # arrives, so pump until it does rather than for one dispatch.
    pump_until(sock, closed)
    assert seen[-1] == ("state", "closed", me)


def test_push_nowait_outcomes(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, delivery="polled", **FAST)
    chan = sock.channel("room:pn")
    sock.connect()
    outcomes: List[Tuple[bool, Any]] = []
    done = threading.Event()

    def record(ok: bool, value: Any) -> None:
        outcomes.append((ok, value))
        if len(outcomes) == 3:
            done.set()

    chan.join_nowait(lambda ok, value: None)
    chan.push_nowait("echo", {"n": 1}, record)
    chan.push_nowait("error_x", {"n": 2}, record)
    chan.push_nowait("noreply_x", {}, record, timeout=0.2)
    pump_until(sock, done)
    assert outcomes[0] == (True, {"n": 1})
    assert not outcomes[1][0] and isinstance(outcomes[1][1], nhc.PushError)
    assert not outcomes[2][0] and isinstance(outcomes[2][1], nhc.PushTimeout)
    sock.close()


def test_mode_mismatches_are_refused(server: DevServer) -> None:
    threaded = nhc.Socket(server.ws_url)
    with pytest.raises(nhc.InvalidArgument):
        threaded.fileno()
    with pytest.raises(nhc.InvalidArgument):
        threaded.dispatch()
    threaded.close()
    polled = nhc.Socket(server.ws_url, delivery="polled")
    with pytest.raises(nhc.InvalidArgument):
        polled.wait_connected(0.1)
    polled.close()


def test_dispatch_from_a_callback_is_refused(server: DevServer) -> None:
    errors: List[BaseException] = []
    done = threading.Event()
    holder: List[nhc.Socket] = []

    def on_state(change: nhc.StateChange) -> None:
        try:
            holder[0].dispatch()
        except nhc.Error as e:
            errors.append(e)
        done.set()

    sock = nhc.Socket(server.ws_url, delivery="polled", on_state=on_state)
    holder.append(sock)
    sock.connect()
    pump_until(sock, done)
    assert errors and "already running" in str(errors[0])
    sock.close()
