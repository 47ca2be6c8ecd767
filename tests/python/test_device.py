"""The NervesHub device layer through the blocking API, against the dev server."""

import math
import queue
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, cast

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, Control, DevServer, get

METADATA = {
    "nerves_fw_uuid": "11111111-2222-3333-4444-555555555555",
    "nerves_fw_product": "py-test",
    "nerves_fw_version": "1.0.0",
}

DeviceFactory = Any


@pytest.fixture
def make_device(server: DevServer) -> Iterator[DeviceFactory]:
    """Makes devices, each authenticated with its own NH1 identifier unless
    the test gives a `url` (and its credentials); closes them after the test."""
    made: List[nhc.Device] = []

    def make(**kwargs: Any) -> nhc.Device:
        options: Dict[str, Any] = dict(FAST, metadata=METADATA)
        if "url" not in kwargs:
            options.update(server.device_auth(f"py-device-{len(made) + 1}"))
        options.update(kwargs)
        device = nhc.Device(options.pop("url"), **options)
        made.append(device)
        return device

    try:
        yield make
    finally:
        for device in made:
            device.close()


def events(device: nhc.Device, kind: str) -> "queue.Queue[Any]":
    q: "queue.Queue[Any]" = queue.Queue()
    device.on(kind, q.put)
    return q


def firmware(control: Control, name: str, size: int, seed: int = 1) -> Dict[str, Any]:
    return dict(control.call("/firmware", {"name": name, "size": size, "seed": seed}))


def firmware_bytes(control: Control, name: str) -> bytes:
    with urllib.request.urlopen(f"{control.base}/firmware/{name}", timeout=WAIT) as resp:
        data: bytes = resp.read()
    return data


def wait_status(control: Control, status: str) -> Dict[str, Any]:
    """The first `status_update` with `status` the server received (waits for it)."""
    count = 1
    while True:
        seen = control.wait("device", "status_update", count=count)
        for message in seen:
            if message["payload"].get("status") == status:
                return dict(message["payload"])
        count = len(seen) + 1


def connected(device: nhc.Device) -> nhc.Device:
    device.connect()
    device.wait_joined(timeout=WAIT)
    return device


def test_join_payload_carries_metadata_and_device_fields(server: DevServer, make_device: DeviceFactory) -> None:
    joined = queue.Queue()  # type: queue.Queue[Any]
    device = make_device(fwup_version="1.13.2", firmware_validated=lambda: True)
    device.on("channel", joined.put)
    connected(device)
    assert device.joined and device.state == "connected"
    (join,) = server.control.wait("device", "phx_join")
    payload = join["payload"]
    for key, value in METADATA.items():
        assert payload[key] == value
    assert payload["device_api_version"] == "2.3.0"
    assert payload["fwup_version"] == "1.13.2"
    assert payload["update_tool"] == "fwup"
    assert payload["currently_downloading_uuid"] is None
    assert payload["meta"]["firmware_validated"] is True
    event = get(joined)
    assert isinstance(event, nhc.ChannelEvent)
    assert (event.topic, event.state) == ("device", "joined")


def test_metadata_from_an_fw_env_file(server: DevServer, make_device: DeviceFactory, tmp_path: Path) -> None:
    env = tmp_path / "fw_env.txt"
    env.write_text("a.nerves_fw_uuid=aaaa\nb.nerves_fw_uuid=bbbb\nb.nerves_fw_version=2.0.0\nnerves_fw_active=b\n")
    connected(make_device(metadata=None, fwup_env_path=str(env)))
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["nerves_fw_uuid"] == "bbbb"
    assert join["payload"]["nerves_fw_version"] == "2.0.0"


def test_an_update_is_applied_into_a_file(server: DevServer, make_device: DeviceFactory, tmp_path: Path) -> None:
    fw = firmware(server.control, "py-file", 2 * 1024 * 1024 + 12345)
    device = make_device()
    offers = events(device, "update")
    progress = events(device, "update_progress")
    finished = events(device, "update_finished")
    connected(device)
    assert server.control.push("device", "update", fw["update"]) == 1
    update = get(offers)
    assert isinstance(update, nhc.UpdateInfo)
    assert update.uuid == fw["update"]["firmware_meta"]["uuid"]
    assert update.size == fw["size"] and update.checksum == fw["checksum"]
    assert update.raw == fw["update"]
    assert device.pending_update() == update
    assert wait_status(server.control, "received") == {"status": "received"}

    target = tmp_path / "next.fw"
    device.apply_update(update, path=target)
    device.wait_update(timeout=WAIT * 3)
    assert target.read_bytes() == firmware_bytes(server.control, "py-file")
    assert not device.update_in_progress
    done = get(finished)
    assert isinstance(done, nhc.UpdateFinished) and done.ok and done.reason is None
    seen = []
    while not progress.empty():
        seen.append(progress.get_nowait())
    percents = [p.percent for p in seen]
    assert percents and percents[-1] == 100, percents
    assert all(a < b for a, b in zip(percents, percents[1:])), percents
    assert wait_status(server.control, "completed") == {"status": "completed"}
    started = wait_status(server.control, "started")
    assert "downloader_network_interface" in started
    reported = server.control.wait("device", "fwup_progress")
    assert reported[0]["payload"]["stage"] in ("downloading", "updating")


def test_a_corrupted_image_is_reported_failed(server: DevServer, make_device: DeviceFactory, tmp_path: Path) -> None:
    fw = firmware(server.control, "py-corrupt", 300_000)
    server.control.call("/firmware_faults", {"name": "py-corrupt", "corrupt_at": 1000})
    # Without per-MiB checksums the corruption is only caught by the whole-file check.
    payload = dict(fw["update"], partials_checksums=[])
    device = connected(make_device())
    server.control.push("device", "update", payload)
    update = device.wait_for_update(timeout=WAIT)
    assert update is not None
    target = tmp_path / "bad.fw"
    device.apply_update(update, path=target)
    with pytest.raises(nhc.UpdateError) as info:
        device.wait_update(timeout=WAIT * 3)
    assert "Checksum mismatch" in info.value.reason
    failed = wait_status(server.control, "failed")
    assert failed["reason"] == info.value.reason
    assert not target.exists()


class ListSink:
    """A custom sink that keeps the image in memory."""

    stage = "updating"

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.finished = threading.Event()
        self.aborted: List[str] = []
        self.began: List[Any] = []

    def begin(self, update: nhc.UpdateInfo) -> None:
        self.began.append(update)

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        self.finished.set()

    def abort(self, reason: str) -> None:
        self.aborted.append(reason)


def test_an_update_into_a_python_sink(server: DevServer, make_device: DeviceFactory) -> None:
    fw = firmware(server.control, "py-sink", 150_000, seed=7)
    device = connected(make_device())
    server.control.push("device", "update", fw["update"])
    update = device.wait_for_update(timeout=WAIT)
    assert update is not None
    sink = ListSink()
    device.apply_update(update, sink=sink)
    device.wait_update(timeout=WAIT * 3)
    assert sink.finished.is_set() and not sink.aborted
    assert [u.uuid for u in sink.began] == [update.uuid]
    assert b"".join(sink.chunks) == firmware_bytes(server.control, "py-sink")
    progress = server.control.wait("device", "fwup_progress")
    assert progress[0]["payload"]["stage"] == "updating"


def test_ignore_and_reschedule_are_reported(server: DevServer, make_device: DeviceFactory) -> None:
    fw = firmware(server.control, "py-decide", 1000)
    device = connected(make_device())
    with pytest.raises(nhc.InvalidArgument):
        device.ignore_update("nothing pending")
    server.control.push("device", "update", fw["update"])
    assert device.wait_for_update(timeout=WAIT) is not None
    device.ignore_update("busy")
    assert wait_status(server.control, "ignored") == {"status": "ignored", "reason": "busy"}
    assert device.pending_update() is None

    server.control.push("device", "update", fw["update"])
    assert device.wait_for_update(timeout=WAIT) is not None
    with pytest.raises(nhc.InvalidArgument, match="longer than zero"):
        device.reschedule_update(0)
    device.reschedule_update(600, "later")
    assert wait_status(server.control, "rescheduled") == {
        "status": "rescheduled",
        "delay_for": 600000,
        "reason": "later",
    }


def test_reboot_is_acknowledged_before_the_callback_and_identify_arrives(
    server: DevServer, make_device: DeviceFactory
) -> None:
    device = make_device()
    acknowledged: "queue.Queue[Any]" = queue.Queue()

    def on_reboot(event: Any) -> None:
        # `rebooting` was sent before this callback was called.
        acknowledged.put((event, server.control.wait("device", "rebooting", timeout=WAIT)))

    device.on("reboot", on_reboot)
    identify = events(device, "identify")
    connected(device)
    server.control.push("device", "reboot", {})
    event, rebooting = get(acknowledged)
    assert isinstance(event, nhc.Reboot) and len(rebooting) == 1
    server.control.push("device", "identify", {})
    assert isinstance(get(identify), nhc.Identify)


def test_unknown_events_pass_through_and_handlers_can_be_removed(
    server: DevServer, make_device: DeviceFactory
) -> None:
    device = make_device()
    everything = events(device, "*")
    messages = events(device, "message")
    connected(device)
    server.control.push("device", "something_new", {"x": 1})
    message = get(messages)
    assert isinstance(message, nhc.DeviceMessage)
    assert (message.topic, message.event, message.payload) == ("device", "something_new", {"x": 1})
    # API 2.3.0 gets `extensions:get` after the join.
    kinds = [get(everything).kind for _ in range(3)]
    assert kinds == ["channel", "extensions_get", "message"]
    assert device.off("message") == 1
    with pytest.raises(nhc.InvalidArgument):
        device.on("no_such_kind", print)


def test_console_round_trip(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device(console=True)
    inputs = events(device, "console_input")
    device.on("console_input", lambda event: device.console_output(f"echo {event.data}"))
    connected(device)
    server.control.wait_joined("console")
    (join,) = server.control.wait("console", "phx_join")
    assert join["payload"]["console_version"] == "1.0.0"
    server.control.push("console", "dn", {"data": "ls\r"})
    assert get(inputs) == nhc.ConsoleInput("ls\r")
    (up,) = server.control.wait("console", "up")
    assert up["payload"] == {"data": "echo ls\r"}


def test_extensions_attach_and_send_a_health_report(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device(extensions={"health": lambda: {"queue_depth": 4.0}, "logging": True})
    extension_events = events(device, "extension")
    connected(device)
    server.control.wait("extensions", "health:attached")
    server.control.wait("extensions", "logging:attached")
    negotiated = get(extension_events)
    assert negotiated.event == "negotiated"
    assert set(negotiated.names) == {"health", "logging"}
    assert set(device.attached_extensions) == {"health", "logging"}
    device.report_metric("user_metric", 2.5)
    server.control.push("extensions", "health:check", {})
    (report,) = server.control.wait("extensions", "health:report")
    metrics = report["payload"]["value"]["metrics"]
    assert metrics["queue_depth"] == 4.0 and metrics["user_metric"] == 2.5
    device.log("info", "hello from python")
    (line,) = server.control.wait("extensions", "logging:send")
    assert "hello from python" in str(line["payload"])


@pytest.mark.skipif(sys.platform != "linux", reason="the local shell needs Linux")
def test_local_shell_is_off_by_default_and_runs_input_when_on(server: DevServer, make_device: DeviceFactory) -> None:
    server.control.call("/extensions", {"enabled": ["health", "local_shell"]})
    off = make_device(extensions={"health": True})
    connected(off)
    (join,) = server.control.wait("extensions", "phx_join")
    assert join["payload"] == {"health": "0.0.1"}

    device = make_device(extensions={"local_shell": True})
    extension_events = events(device, "extension")
    connected(device)
    joins = server.control.wait("extensions", "phx_join", 2)
    assert joins[1]["payload"] == {"local_shell": "0.0.1"}
    (status,) = server.control.wait("extensions", "local_shell:request_status")
    assert status["payload"] == {"status": "started"}
    seen = [get(extension_events).event for _ in range(2)]
    assert seen == ["negotiated", "local_shell:request_shell"]
    server.control.push("extensions", "local_shell:shell_input", {"data": "echo py-$((6*7))\n"})
    for count in range(1, 200):
        out = server.control.wait("extensions", "local_shell:shell_output", count)
        if "py-42" in "".join(m["payload"]["data"] for m in out):
            break
    else:
        pytest.fail("no py-42 in the shell output")


def test_nh1_shared_secret_connects_and_a_wrong_one_is_an_auth_error(
    server: DevServer, make_device: DeviceFactory
) -> None:
    server.control.call("/shared_secret", {"key": "nhp_pytest", "secret": "py-secret"})
    url = server.ws_url.replace("/socket/", "/device-socket/")
    device = make_device(url=url, shared_secret=nhc.SharedSecret("nhp_pytest", "py-secret", "py-dev-1"))
    connected(device)
    identities = {c["identity"] for c in server.control.connections()}
    assert "py-dev-1" in identities
    assert "py-secret" not in repr(nhc.SharedSecret("nhp_pytest", "py-secret", "x"))

    wrong = make_device(url=url, shared_secret=("nhp_pytest", "not-the-secret", "py-dev-2"))
    wrong.connect()
    with pytest.raises(nhc.AuthError):
        wrong.wait_connected(timeout=WAIT)


def test_a_clock_ten_minutes_ahead_joins_after_one_fast_retry(
    server: DevServer, make_device: DeviceFactory
) -> None:
    server.control.call("/shared_secret", {"key": "nhp_pyclock", "secret": "py-secret"})
    url = server.ws_url.replace("/socket/", "/device-socket/")
    states: "queue.Queue[Any]" = queue.Queue()
    # The slow end of this backoff (60-90 s) would outlast WAIT: joining in
    # time shows the refusal's new Date was retried at the first step.
    device = make_device(
        url=url,
        shared_secret=("nhp_pyclock", "py-secret", "py-fast-clock"),
        clock_offset=600,
        backoff_max=60.0,
        on_state=states.put,
    )
    connected(device)
    seen = [get(states).state]
    while seen[-1] != "connected":
        seen.append(get(states).state)
    assert seen.count("auth_error") == 1, seen


def test_two_devices_with_one_certificate_are_told_and_back_off(
    server: DevServer, make_device: DeviceFactory
) -> None:
    tls = dict(ca=server.ca, cert=server.device_cert, key=server.device_key, stable_after=1.0)
    first = make_device(url=server.wss_url, backoff_max=0.2, backoff_jitter=0.0, **tls)
    told_first = events(first, "identity_in_use")
    connected(first)
    second = make_device(url=server.wss_url, backoff_max=0.2, backoff_jitter=0.0, **tls)
    told_second = events(second, "identity_in_use")
    second.connect()
    for told in (get(told_first), get(told_second)):
        assert isinstance(told, nhc.IdentityInUse)
        assert told.sessions == 3
        assert "in use by another device" in told.reason
    assert server.control.call("/kicks")["kicks"] >= 6


def test_bad_arguments_are_invalid_argument(server: DevServer) -> None:
    with pytest.raises(nhc.InvalidArgument, match="device-socket"):
        nhc.Device(server.ws_url.replace("/socket/", "/other/"))
    with pytest.raises(nhc.InvalidArgument, match="digest"):
        nhc.Device(server.ws_url, shared_secret=nhc.SharedSecret("nhp_x", "s", "i", digest="md5"))
    with pytest.raises(nhc.InvalidArgument, match="unknown extension"):
        nhc.Device(server.ws_url, extensions=cast(Any, {"nope": True}))
    with nhc.Device(server.ws_url) as device:
        for kind in nhc.EVENT_KINDS + ("*",):
            device.on(kind, print)
        with pytest.raises(nhc.InvalidArgument, match="exactly one"):
            device.apply_update({"update_available": True}, path="/tmp/x", fwup=["fwup"])
        with pytest.raises(nhc.InvalidArgument, match="console"):
            device.console_output("x")
    with pytest.raises(nhc.InvalidArgument, match="device_rejoin_after_close"):
        nhc.Device(server.ws_url, device_rejoin_after_close=0)


def test_the_device_channel_rejoin_after_a_close_is_settable(
    server: DevServer, make_device: DeviceFactory
) -> None:
    def closed_queue(device: nhc.Device) -> "queue.Queue[Any]":
        q: "queue.Queue[Any]" = queue.Queue()
        def on_channel(e: Any) -> None:
            if isinstance(e, nhc.ChannelEvent) and e.topic == "device" and e.state == "closed":
                q.put(e)

        device.on("channel", on_channel)
        return q

    quick = make_device(device_rejoin_after_close=0.05)
    closed = closed_queue(quick)
    connected(quick)
    assert server.control.close("device") == 1
    closed.get(timeout=WAIT)
    server.control.wait_joined("device", count=2)
    quick.close()

    never = make_device(device_rejoin_after_close=math.inf)
    closed = closed_queue(never)
    connected(never)
    assert server.control.close("device") == 1
    closed.get(timeout=WAIT)
    # 0.05 s rejoined above; this one stays closed until connect().
    with pytest.raises(AssertionError, match="timed out"):
        server.control.wait_joined("device", count=4, timeout=0.5)
    never.connect()
    server.control.wait_joined("device", count=4)


def test_an_unusable_update_is_reported_failed(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device()
    invalid = events(device, "invalid_message")
    connected(device)
    server.control.push("device", "update", {"update_available": True, "firmware_url": "ftp://x/fw"})
    event = invalid.get(timeout=WAIT)
    assert "http or https" in event.detail
    assert wait_status(server.control, "failed") == {"status": "failed", "reason": f"Update failed : {event.detail}"}


def test_a_raising_handler_is_logged_and_delivery_goes_on(
    server: DevServer, make_device: DeviceFactory, log_records: Any
) -> None:
    device = make_device()

    def broken(event: Any) -> None:
        raise RuntimeError("handler broke on purpose")

    device.on("identify", broken)
    after = events(device, "identify")
    connected(device)
    server.control.push("device", "identify", {})
    log_records.wait_for("handler broke on purpose")
    assert isinstance(get(after), nhc.Identify)


def test_polled_delivery_runs_handlers_in_dispatch(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device(delivery="polled")
    seen: List[Any] = []
    device.on("*", seen.append)
    device.connect()
    with pytest.raises(nhc.InvalidArgument):
        device.wait_joined(timeout=WAIT)
    assert device.fileno() >= 0
    while not device.joined:
        device.dispatch(timeout=WAIT)
    server.control.push("device", "identify", {})
    while not any(isinstance(e, nhc.Identify) for e in seen):
        assert device.dispatch(timeout=WAIT) > 0
    assert seen[0] == nhc.ChannelEvent("device", "joined", {})


class BlockingSink(ListSink):
    """Blocks the first write until aborted, so that a cancel can be tested."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.released = threading.Event()

    def write(self, chunk: bytes) -> None:
        self.writing.set()
        self.released.wait(WAIT)

    def abort(self, reason: str) -> None:
        super().abort(reason)
        self.released.set()


def test_cancel_aborts_the_sink_and_reports_failed(server: DevServer, make_device: DeviceFactory) -> None:
    fw = firmware(server.control, "py-cancel", 100_000)
    device = connected(make_device())
    assert not device.cancel_update()
    server.control.push("device", "update", fw["update"])
    update = device.wait_for_update(timeout=WAIT)
    sink = BlockingSink()
    device.apply_update(update, sink=sink)
    assert sink.writing.wait(WAIT)
    assert device.update_in_progress
    with pytest.raises(nhc.InvalidArgument):
        device.apply_update(update, path="/nonexistent/never.fw")
    assert device.cancel_update()
    with pytest.raises(nhc.UpdateError) as info:
        device.wait_update(timeout=WAIT)
    assert info.value.reason == "Update cancelled"
    assert sink.aborted == ["Update cancelled"] and not sink.finished.is_set()
    assert wait_status(server.control, "failed") == {"status": "failed", "reason": "Update cancelled"}


def test_scripts_archives_and_firmware_validated(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device(scripts=True)
    scripts = events(device, "script_run")
    archives = events(device, "archive")
    connected(device)
    server.control.push("device", "scripts/run", {"ref": "r-1", "text": "1 + 1"})
    script = get(scripts)
    assert script == nhc.ScriptRun("r-1", "1 + 1")
    assert script.script_ref == "r-1"
    device.script_result(script.script_ref, "completed", "2", "2")
    (answer,) = server.control.wait("device", "scripts/run")
    assert answer["payload"] == {"ref": "r-1", "result": "completed", "output": "2", "return": "2"}
    with pytest.raises(nhc.InvalidArgument):
        device.script_result("r-2", "maybe")

    url = "https://archives.example.com/a.tar?X-Amz-Signature=topsecret"
    server.control.push("device", "archive", {"uuid": "a-1", "url": url, "size": 10, "version": "1.0"})
    archive = get(archives)
    assert isinstance(archive, nhc.ArchiveInfo)
    assert (archive.uuid, archive.url, archive.size) == ("a-1", url, 10)
    assert "topsecret" not in repr(archive)

    device.firmware_validated()
    server.control.wait("device", "firmware_validated")


def test_an_update_that_cannot_start_raises_and_the_next_one_is_waited_for(
    server: DevServer, make_device: DeviceFactory, tmp_path: Path
) -> None:
    fw = firmware(server.control, "py-after-bad", 5000)
    device = connected(make_device())
    with pytest.raises(nhc.InvalidArgument, match="no update was applied"):
        device.wait_update(timeout=WAIT)
    with pytest.raises(nhc.InvalidArgument, match="http or https"):
        device.apply_update(dict(fw["update"], firmware_url="ftp://example.com/fw"), path=tmp_path / "x.fw")
    with pytest.raises(nhc.UpdateError, match="update_available is false"):
        device.apply_update(dict(fw["update"], update_available=False), path=tmp_path / "bad.fw")
    assert wait_status(server.control, "failed")["reason"].startswith("Update failed")
    device.apply_update(fw["update"], path=tmp_path / "good.fw")
    device.wait_update(timeout=WAIT * 3)
    assert (tmp_path / "good.fw").read_bytes() == firmware_bytes(server.control, "py-after-bad")


def test_geo_location_comes_from_the_python_provider(server: DevServer, make_device: DeviceFactory) -> None:
    calls: List[str] = []

    def locate() -> Dict[str, Any]:
        calls.append(threading.current_thread().name)
        return {"latitude": 48.85, "longitude": 2.35, "source": "gps", "accuracy": 12}

    device = connected(make_device(extensions={"geo": locate}))
    server.control.wait("extensions", "geo:attached")
    server.control.push("extensions", "geo:location:request", {})
    (update,) = server.control.wait("extensions", "geo:location:update")
    assert update["payload"] == {"latitude": 48.85, "longitude": 2.35, "source": "gps", "accuracy": 12}
    assert calls and calls[0] != threading.main_thread().name
    assert device.attached_extensions == ["geo"]


def test_an_offered_archive_downloads_into_a_file(
    server: DevServer, make_device: DeviceFactory, tmp_path: Path
) -> None:
    device = make_device()
    archives = events(device, "archive")
    connected(device)
    with pytest.raises(nhc.InvalidArgument, match="no archive was offered"):
        device.download_archive(path=tmp_path / "none.bin")
    fw = firmware(server.control, "py-archive", 900_000, seed=3)
    server.control.call("/firmware_faults", {"name": "py-archive", "cut_after_bytes": 300_000, "cuts": 1})
    server.control.push("device", "archive", {"uuid": "a-7", "url": fw["url"], "size": fw["size"]})
    get(archives)
    device.download_archive(path=tmp_path / "a.bin", retry_delay=0.01, timeout=WAIT * 3)
    assert (tmp_path / "a.bin").read_bytes() == firmware_bytes(server.control, "py-archive")

    server.control.push("device", "archive", {"uuid": "a-8", "url": fw["url"] + "-missing", "size": 5})
    get(archives)
    with pytest.raises(nhc.UpdateError, match="Download failed"):
        device.download_archive(path=tmp_path / "b.bin", timeout=WAIT * 3)
    assert not (tmp_path / "b.bin").exists()
