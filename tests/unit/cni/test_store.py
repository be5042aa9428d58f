"""cni.store: atomic writes that never leave a torn or temp file, and a lock that holds
across processes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cni import store

from .conftest import subprocess_env


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith(store.TMP_PREFIX))


def test_atomic_write_creates_directories_and_sets_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    store.atomic_write(str(path), b"one")
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o600
    store.atomic_write(str(path), b"two", mode=0o644)
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o644
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync", "os.chmod"])
def test_a_failed_write_leaves_no_temp_file_and_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "state.json"
    store.atomic_write(str(path), b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(failing, boom)
    with pytest.raises(OSError, match="No space left"):
        store.atomic_write(str(path), b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.atomic_write(str(path), b"new")
    monkeypatch.undo()
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_bad_data_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        store.atomic_write(str(tmp_path / "x"), "text, not bytes")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_json_documents_round_trip_and_remove(tmp_path: Path) -> None:
    path = str(tmp_path / "doc.json")
    assert store.read_json(path) is None
    store.write_json(path, {"b": [1, 2], "a": None})
    assert store.read_json(path) == {"a": None, "b": [1, 2]}
    assert store.remove(path) is True
    assert store.remove(path) is False
    assert store.read_json(path) is None


_WAITER = """
import sys
from cni import store
print("ready", flush=True)
with store.locked(sys.argv[1]):
    print("got it", flush=True)
"""


def _line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else None


def test_locked_excludes_another_process(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "store.lock"
    with store.locked(str(lock)):
        proc = subprocess.Popen([sys.executable, "-c", _WAITER, str(lock)], stdout=subprocess.PIPE, text=True,
                                env=subprocess_env({}))
        try:
            assert _line(proc, 30) == "ready"
            assert _line(proc, 0.5) is None  # blocked on our lock
            assert proc.poll() is None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    try:
        assert _line(proc, 30) == "got it"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_locked_is_released_when_the_block_raises(tmp_path: Path) -> None:
    lock = str(tmp_path / "store.lock")
    with pytest.raises(RuntimeError), store.locked(lock):
        raise RuntimeError("inside")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _WAITER, lock], capture_output=True, text=True, timeout=30,
                          env=subprocess_env({}), check=True)
    assert proc.stdout.split() == ["ready", "got", "it"]
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("torn", [b"", b"\0\0\0", b"  \n", b'{"a": [1, 2', b'{"a": "unfinished', b'[{"b": 1}, '])
def test_an_empty_or_cut_short_file_reads_as_nothing_recorded(tmp_path: Path, torn: bytes) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(torn)
    assert store.read_json(str(path)) is None


@pytest.mark.parametrize("whole", [b"garbage", b'{"a": 1} trailing', b"\xff\xfe"])
def test_a_whole_file_that_is_not_json_is_still_an_error(tmp_path: Path, whole: bytes) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(whole)
    with pytest.raises(ValueError):
        store.read_json(str(path))


def test_json_state_is_written_without_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr("os.fsync", synced.append)
    store.write_json(str(tmp_path / "doc.json"), {"a": 1})
    assert synced == []
    store.atomic_write(str(tmp_path / "conf"), b"x")  # installed files: data and directory
    assert len(synced) == 2


_WRITER = """
import sys
from cni import store
n = 0
print("writing", flush=True)
while True:
    n += 1
    store.write_json(sys.argv[1], {"n": n, "pad": "x" * 65536})
"""


def test_a_writer_killed_with_sigkill_leaves_a_whole_document(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                                env=subprocess_env({}))
        assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:  # the first rename
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        doc = store.read_json(str(path))
        assert isinstance(doc, dict) and doc["pad"] == "x" * 65536
    others = [name for name in os.listdir(tmp_path) if name != "state.json"]
    assert [name for name in others if not name.startswith(store.TMP_PREFIX)] == []
