"""The hand-written stubs match the compiled module; everything is typed and documented."""

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

import nerves_hub_channel as nhc
from nerves_hub_channel import _native
from conftest import ROOT

STUB = Path(_native.__file__).with_name("_native.pyi")
HAVE_MYPY = importlib.util.find_spec("mypy") is not None


def stub_socket_defaults() -> Dict[str, Any]:
    tree = ast.parse(STUB.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Socket":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__new__":
                    args = item.args
                    return {
                        a.arg: ast.literal_eval(d) if d is not None else inspect.Parameter.empty
                        for a, d in zip(args.kwonlyargs, args.kw_defaults)
                    }
    raise AssertionError("no Socket.__new__ in the stub")


@pytest.mark.skipif(not HAVE_MYPY, reason="mypy is not installed")
def test_stubtest(tmp_path: Path) -> None:
    flags = []
    help_text = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--help"], capture_output=True, text=True
    ).stdout
    if "--ignore-disjoint-bases" in help_text:
        # PEP 800 markers: too new for the type checkers of many users.
        flags.append("--ignore-disjoint-bases")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *flags, "nerves_hub_channel"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # mypy's cache goes there, not into the work tree
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stub_defaults_are_the_core_defaults() -> None:
    stub = stub_socket_defaults()
    core = _native._defaults()
    assert set(core) <= set(stub)
    for name, value in core.items():
        assert stub[name] == value, name


def test_async_socket_takes_the_same_options() -> None:
    stub = stub_socket_defaults()
    params = inspect.signature(nhc.AsyncSocket).parameters
    asynchronous = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    del stub["delivery"]
    assert asynchronous == stub


def test_runtime_signature_matches_the_stub() -> None:
    try:
        runtime = inspect.signature(_native.Socket)
    except ValueError:
        pytest.skip("this Python exposes no signature for abi3 constructors")
    got = {n: p.default for n, p in runtime.parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert got == stub_socket_defaults()


def test_every_public_name_is_documented() -> None:
    missing = []
    for name in nhc.__all__:
        obj = getattr(nhc, name)
        if name == "__version__":
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if not (callable(member) or inspect.isdatadescriptor(member)):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    missing.append(f"{name}.{attr}")
    assert not missing


@pytest.mark.skipif(not HAVE_MYPY, reason="mypy is not installed")
def test_examples_and_package_type_check(tmp_path: Path) -> None:
    runs = (
        ["--strict", "-p", "nerves_hub_channel"],
        ["--strict", str(ROOT / "examples" / "python")],
        [str(ROOT / "tests" / "python")],
    )
    for targets in runs:
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--no-incremental", *targets],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def stub_defaults(class_name: str) -> Dict[str, Any]:
    tree = ast.parse(STUB.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__new__":
                    args = item.args
                    return {
                        a.arg: ast.literal_eval(d) if d is not None else inspect.Parameter.empty
                        for a, d in zip(args.kwonlyargs, args.kw_defaults)
                    }
    raise AssertionError(f"no {class_name}.__new__ in the stub")


def test_async_device_takes_the_options_of_device() -> None:
    stub = stub_defaults("Device")
    del stub["delivery"]
    params = inspect.signature(nhc.AsyncDevice).parameters
    asynchronous = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert asynchronous.pop("max_pending") == 1024
    assert asynchronous == stub
