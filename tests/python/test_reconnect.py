"""Reconnects, rejoins and join params re-evaluated on every rejoin."""

import itertools
import queue
from typing import Any, Dict, List, Tuple

import nerves_hub_channel as nhc
from conftest import FAST, DevServer, LogRecords, get


def states_of(chan: nhc.Channel) -> "queue.Queue[Tuple[str, Any]]":
    q: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
    chan.on_state(lambda state, detail: q.put((state, detail)))
    return q


def next_state(q: "queue.Queue[Tuple[str, Any]]", wanted: str) -> Any:
    """Skips to the next `wanted` channel state and returns its detail."""
    seen: List[str] = []
    while True:
        state, detail = get(q)
        if state == wanted:
            return detail
        seen.append(state)
        assert len(seen) < 50, seen


def test_rejoin_after_a_dropped_connection(server: DevServer) -> None:
    changes: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, on_state=changes.put, **FAST)
    sock.connect()
    chan = sock.channel("room:drop")
    states = states_of(chan)
    chan.join()
    assert next_state(states, "joined") == {}
    assert server.control.drop() >= 1
    assert next_state(states, "errored") == "connection lost"
    assert next_state(states, "joined") == {}
    seen: List[str] = []
    while seen.count("connected") < 2:
        seen.append(get(changes).state)
    assert "disconnected" in seen
    assert chan.push("after_drop", {"ok": True}) == {"ok": True}
    sock.close()


def test_rejoin_after_a_channel_crash(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:crash")
    states = states_of(chan)
    chan.join()
    next_state(states, "joined")
    assert server.control.crash("room:crash") == 1
    assert next_state(states, "errored")
    next_state(states, "joined")
    server.control.wait_joined("room:crash", count=2)
    assert chan.push("after_crash", {}) == {}


def test_server_close_ends_the_channel(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:close")
    states = states_of(chan)
    chan.join()
    next_state(states, "joined")
    server.control.close("room:close")
    assert next_state(states, "closed") == "phx_close"
    assert not chan.joined


def test_params_callable_is_evaluated_at_every_join(server: DevServer, sock: nhc.Socket) -> None:
    counter = itertools.count(1)

    def params() -> Dict[str, Any]:
        return {"attempt": next(counter), "uuid": "fw-1"}

    chan = sock.channel("room:dyn", params=params)
    states = states_of(chan)
    chan.join()
    server.control.crash("room:dyn")
    next_state(states, "errored")
    next_state(states, "joined")
    joins = server.control.wait("room:dyn", "phx_join", count=2)
    assert [j["payload"] for j in joins] == [{"attempt": 1, "uuid": "fw-1"}, {"attempt": 2, "uuid": "fw-1"}]


def test_params_callable_that_raises_joins_with_empty_params(
    server: DevServer, sock: nhc.Socket, log_records: LogRecords
) -> None:
    def params() -> Dict[str, Any]:
        raise ValueError("no metadata today")

    sock.channel("room:badparams", params=params).join()
    (join,) = server.control.wait("room:badparams", "phx_join")
    assert join["payload"] == {}
    record = log_records.wait_for("no metadata today")
    assert record.levelname == "ERROR"
    assert getattr(record, "rust_target", "").startswith("_native")


def test_reconnects_after_the_server_closes_the_connection(server: DevServer) -> None:
    changes: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, on_state=changes.put, **FAST)
    sock.connect()
    sock.wait_connected()
    chan = sock.channel("room:closeconn")
    states = states_of(chan)
    chan.join()
    server.control.close_connections(1011)
    down = None
    while down is None:
        change = get(changes)
        if change.state == "disconnected":
            down = change
    assert isinstance(down.error, nhc.ConnectError)
    assert down.reconnect_in is not None
    next_state(states, "joined")
    next_state(states, "joined")
    sock.close()


def test_disconnect_and_connect_again(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:again")
    states = states_of(chan)
    chan.join()
    sock.disconnect()
    next_state(states, "errored")
    sock.connect()
    sock.wait_connected()
    next_state(states, "joined")
    assert chan.push("again", {"n": 2}) == {"n": 2}
