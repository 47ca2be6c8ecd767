"""Process life: exiting with live sockets, shutdown(), fork()."""

import os
import subprocess
import sys
import textwrap

import pytest

import nerves_hub_channel as nhc
from conftest import WAIT, DevServer


def run_script(code: str, *args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
    )


EXIT_WITH_LIVE_SOCKETS = """
    import sys, threading, asyncio
    import nerves_hub_channel as nhc
    url = sys.argv[1]
    got = threading.Event()

    sock = nhc.Socket(url, on_state=lambda c: None)
    chan = sock.channel("room:exit", params=lambda: {"dynamic": True})
    chan.on("*", lambda e, p: got.set())
    sock.connect()
    chan.join()

    polled = nhc.Socket(url, delivery="polled")
    polled.connect()

    async def leave_open():
        a = nhc.AsyncSocket(url)
        a.connect()
        await a.channel("room:exit-async").join()
        return a
    kept = asyncio.run(leave_open())

    # An inline socket whose callbacks keep running on its I/O thread, each
    # reply pushing again, while the interpreter exits.
    busy = nhc.Socket(url, delivery="inline")
    busy_chan = busy.channel("room:exit-inline")
    replied = threading.Event()
    def again(ok, value):
        replied.set()
        busy_chan.push_nowait("ping", {}, again)
    busy.connect()
    busy_chan.join()
    busy_chan.push_nowait("ping", {}, again)
    assert replied.wait(10)

    # A thread still blocked in a push while the interpreter exits.
    threading.Thread(target=lambda: chan.push("noreply_forever", {}, timeout=60), daemon=True).start()
    print("ready", flush=True)
"""


def test_exit_with_live_sockets_is_clean(server: DevServer) -> None:
    result = run_script(EXIT_WITH_LIVE_SOCKETS, server.ws_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready" in result.stdout
    assert "panic" not in result.stderr.lower(), result.stderr


def test_shutdown_closes_everything_and_sockets_work_after(server: DevServer) -> None:
    code = """
        import sys, queue
        import nerves_hub_channel as nhc
        url = sys.argv[1]
        states = queue.Queue()
        sock = nhc.Socket(url, on_state=lambda c: states.put(c.state))
        sock.connect()
        sock.wait_connected(10)
        nhc.shutdown()
        while states.get(timeout=10) != "closed":
            pass
        assert sock.state == "closed"
        again = nhc.Socket(url)
        again.connect()
        again.wait_connected(10)
        chan = again.channel("room:again")
        chan.join()
        assert chan.push("x", {"n": 1}) == {"n": 1}
        again.close()
        print("ok")
    """
    result = run_script(code, server.ws_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_fork_child_gets_forked_error(server: DevServer) -> None:
    code = """
        import os, sys, warnings
        import nerves_hub_channel as nhc
        url = sys.argv[1]
        sock = nhc.Socket(url)
        sock.connect()
        sock.wait_connected(10)
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
        if pid == 0:
            try:
                nhc.Socket(url)
            except nhc.ForkedError:
                os._exit(7)
            except BaseException:
                os._exit(8)
            os._exit(9)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
        sock.close()
    """
    result = run_script(code, server.ws_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "child 7" in result.stdout, result.stdout + result.stderr


def test_configure_after_first_use_is_refused() -> None:
    nhc.Socket("ws://localhost/socket/websocket").close()
    with pytest.raises(nhc.InvalidArgument):
        nhc.configure(4)
