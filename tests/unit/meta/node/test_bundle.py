"""meta/launcher/bundle.py and the bundled launcher: the pure parts (ELF and `ld.so
--list` parsing, what of the standard library a release keeps, the `#!` launcher), on
this interpreter's own files and fake trees. Building a real release is the netns lane's
job (tests/netns/test_node_release.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from meta.launcher import bundle, runtime, templates
from meta.launcher.node import InstallError

LIST_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd7a5f2000)
\tlibpython3.11.so.1.0 => /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0 (0x00007f2a7a200000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a7a01e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2a7a7b7000)
"""


def test_this_interpreter_has_an_elf_interpreter() -> None:
    loader = bundle.elf_interpreter(Path(os.path.realpath(sys.executable)))
    assert loader is not None and loader.startswith("/") and "ld-" in loader


def test_files_that_are_not_dynamic_elf_have_no_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert bundle.elf_interpreter(script) is None
    library = Path(os.path.realpath(sys.executable)).parent.parent / "lib"
    shared = next(library.glob("libpython3*.so*"), None)
    if shared is not None:
        assert bundle.elf_interpreter(shared) is None  # a library names no loader


def test_the_loader_list_gives_each_library_and_the_loader() -> None:
    assert bundle.parse_list(LIST_OUTPUT) == [
        ("libpython3.11.so.1.0", "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"),
        ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
    ]


def test_a_library_the_machine_lacks_stops_the_build() -> None:
    with pytest.raises(InstallError, match=r"needs libssl\.so\.3, which this machine does not have"):
        bundle.parse_list("\tlibssl.so.3 => not found\n")


def test_the_standard_library_is_pruned_of_tests_guis_and_optimised_byte_code(tmp_path: Path) -> None:
    stdlib = tmp_path / "python3.11"
    for relative in ("os.py", "json/__init__.py", "test/test_os.py", "tkinter/__init__.py", "idlelib/x.py",
                     "ctypes/test/test_x.py", "unittest/__init__.py", "config-3.11-x86_64-linux-gnu/libpython3.11.a",
                     "site-packages/pip/__init__.py", "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
                     "lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so", "turtle.py"):
        (stdlib / relative).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / relative).touch()
    cache = stdlib / "__pycache__"
    cache.mkdir()
    tag = sys.implementation.cache_tag
    for name in (f"os.{tag}.pyc", f"os.{tag}.opt-1.pyc", f"os.{tag}.opt-2.pyc", f"turtle.{tag}.pyc"):
        (cache / name).touch()
    kept = {str(relative) for _path, relative in bundle.stdlib_files(stdlib)}
    assert kept == {
        "os.py", f"__pycache__/os.{tag}.pyc", "json/__init__.py", "unittest/__init__.py",
        "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
    }


def test_the_bundled_launcher_names_the_release_interpreter_and_only_its_library() -> None:
    text = templates.bundled_launcher(
        name="netplex", version="0.1.0", module="meta.main", attr="main",
        release="/opt/netplex/releases/0.1.0-abc", python="/opt/netplex/releases/0.1.0-abc/runtime/bin/python3.11",
    )
    assert text.splitlines()[0] == "#!/opt/netplex/releases/0.1.0-abc/runtime/bin/python3.11 -IS"
    assert templates.release_of(text) == "/opt/netplex/releases/0.1.0-abc"
    compile(text, "netplex", "exec")
    assert "from meta.main import main" in text


def test_a_bundled_launcher_whose_interpreter_path_the_kernel_cannot_read_is_refused() -> None:
    long = "/opt/" + "x" * 130 + "/python3.11"
    with pytest.raises(ValueError, match="cannot be a #! interpreter"):
        templates.bundled_launcher(name="n", version="0", module="m", attr="a", release="/r", python=long)
    with pytest.raises(ValueError, match="cannot be a #! interpreter"):
        templates.bundled_launcher(name="n", version="0", module="m", attr="a", release="/r", python="/a b/python")


def test_a_bundled_release_has_its_own_id_per_interpreter_and_node_path(tmp_path: Path) -> None:
    (tmp_path / "python3.11").write_bytes(b"\x7fELF")
    (tmp_path / "ld.so").write_bytes(b"\x7fELF")
    interpreter = bundle.Runtime(executable=tmp_path / "python3.11", stdlib=tmp_path, loader=tmp_path / "ld.so",
                                 patchelf="patchelf")
    sources = [runtime.Source("pydantic", "2.0", ())]
    plain = runtime.release_id(sources)
    bundled = runtime.release_id(sources, runtime=interpreter, node_path="/opt/netplex/releases")
    elsewhere = runtime.release_id(sources, runtime=interpreter, node_path="/srv/netplex/releases")
    assert len({plain, bundled, elsewhere}) == 3
    (tmp_path / "python3.11").write_bytes(b"\x7fELF, rebuilt")
    assert runtime.release_id(sources, runtime=interpreter, node_path="/opt/netplex/releases") != bundled
