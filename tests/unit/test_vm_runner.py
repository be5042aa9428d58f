"""The vm lane runner's pure parts: cpio, module order, ELF notes, console markers, the job."""

from __future__ import annotations

import gzip
import lzma
import shlex
import stat
import struct
from pathlib import Path

import pytest

from tools.vm import cpio, elf, initramfs, kernel, modules, qemu, run, vmlinux
from tools.vm.console import Console


def read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """(name, mode, data, rdev) per member, checking the format's 4-byte alignment."""
    members: list[tuple[str, int, bytes, tuple[int, int]]] = []
    at = 0
    while True:
        assert data[at : at + 6] == b"070701"
        fields = [int(data[at + 6 + 8 * i : at + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmajor, rminor, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name = data[at + 110 : at + 110 + namesize - 1].decode()
        assert data[at + 110 + namesize - 1] == 0
        at = skip_padding(data, at + 110 + namesize)
        body = data[at : at + filesize]
        at = skip_padding(data, at + filesize)
        if name == cpio.TRAILER:
            assert at == len(data)
            return members
        members.append((name, mode, body, (rmajor, rminor)))


def skip_padding(data: bytes, at: int) -> int:
    pad = -at % 4
    assert data[at : at + pad] == b"\0" * pad
    return at + pad


def make_elf(segments: list[tuple[int, bytes]]) -> bytes:
    """A minimal 64-bit little-endian ELF whose program headers point at `segments`."""
    header_size, phentsize = 64, 56
    offset = header_size + phentsize * len(segments)
    headers = b""
    body = b""
    for p_type, segment in segments:
        headers += struct.pack("<IIQQQQQQ", p_type, 0, offset + len(body), 0, 0, len(segment), len(segment), 0)
        body += segment
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    elf_header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0, header_size, 0, 0, 64, phentsize, len(segments), 0, 0, 0
    )
    return elf_header + headers + body


def note(name: bytes, note_type: int, desc: bytes) -> bytes:
    def padded(raw: bytes) -> bytes:
        return raw + b"\0" * (-len(raw) % 4)

    return struct.pack("<III", len(name) + 1, len(desc), note_type) + padded(name + b"\0") + padded(desc)


def test_cpio_archive_round_trips_files_dirs_links_and_device_nodes() -> None:
    data = cpio.archive(
        [
            cpio.directory("bin"),
            cpio.regular("bin/busybox", b"\x7fELF-odd-length", 0o755),
            cpio.symlink("bin/sh", "busybox"),
            cpio.char_device("dev/console", 5, 1),
        ]
    )

    members = read_newc(data)

    assert [name for name, *_ in members] == ["bin", "bin/busybox", "bin/sh", "dev/console"]
    modes = {name: mode for name, mode, *_ in members}
    assert stat.S_ISDIR(modes["bin"])
    assert modes["bin/busybox"] == stat.S_IFREG | 0o755
    assert stat.S_ISLNK(modes["bin/sh"])
    assert stat.S_ISCHR(modes["dev/console"])
    assert members[1][2] == b"\x7fELF-odd-length"
    assert members[2][2] == b"busybox"
    assert members[3][3] == (5, 1)
    assert len(data) % 4 == 0


def test_cpio_refuses_absolute_member_paths() -> None:
    with pytest.raises(ValueError, match="relative"):
        cpio.archive([cpio.regular("/init", b"")])


MODULES_DEP = """\
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko
"""


def test_load_order_puts_every_module_after_its_dependencies_once() -> None:
    deps = modules.parse_dep(MODULES_DEP)

    order = modules.load_order(deps, ["9pnet_virtio", "9p"])

    assert sorted(order) == sorted(
        [
            "kernel/net/9p/9pnet.ko",
            "kernel/drivers/virtio/virtio.ko",
            "kernel/net/9p/9pnet_virtio.ko",
            "kernel/fs/netfs/netfs.ko",
            "kernel/fs/fscache/fscache.ko",
            "kernel/fs/9p/9p.ko",
        ]
    )
    for path in order:
        assert all(order.index(dep) < order.index(path) for dep in deps[path])


def test_load_order_skips_builtins_and_refuses_unknown_modules() -> None:
    deps = modules.parse_dep(MODULES_DEP)
    builtin = modules.parse_builtin("kernel/fs/overlayfs/overlay.ko\n")

    assert modules.load_order(deps, ["overlay"], builtin=builtin) == []
    with pytest.raises(LookupError, match="'nosuch'"):
        modules.load_order(deps, ["nosuch"], builtin=builtin)


def test_module_names_drop_suffixes_and_use_underscores() -> None:
    assert modules.module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert modules.module_name("kernel/fs/9p/9p.ko") == "9p"
    assert modules.load_order(modules.parse_dep(MODULES_DEP), ["virtio-rng"])[-1].endswith("virtio-rng.ko.xz")


def test_apt_cache_depends_names_the_concrete_kernel_package() -> None:
    text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n  Depends: other\n"

    assert kernel.parse_depends(text) == ("linux-image-6.1.0-56-amd64", "6.1.0-56-amd64")
    assert kernel.parse_depends("linux-image-amd64\n") is None


def test_elf_static_means_no_program_interpreter() -> None:
    assert elf.is_static(make_elf([(1, b"code")]))
    assert not elf.is_static(make_elf([(elf.PT_INTERP, b"/lib64/ld-linux-x86-64.so.2\0")]))
    assert not elf.is_static(b"#!/bin/sh\n")


def test_vmlinux_is_extracted_only_when_it_has_the_pvh_entry_note() -> None:
    pvh = make_elf([(elf.PT_NOTE, note(b"Xen", 6, b"linux") + note(b"Xen", 18, b"\0\0\0\x01"))])
    plain = make_elf([(elf.PT_NOTE, note(b"Xen", 6, b"linux"))])
    setup = b"MZ bzImage setup code \xfd7zXZ\0 not an xz stream \x1f\x8b\x08 nor gzip "

    assert vmlinux.extract(setup + lzma.compress(pvh, format=lzma.FORMAT_XZ) + b"trailer") == pvh
    assert vmlinux.extract(setup + gzip.compress(pvh) + b"trailer") == pvh
    assert vmlinux.extract(setup + lzma.compress(plain, format=lzma.FORMAT_XZ)) is None
    assert vmlinux.extract(setup) is None


def test_console_streams_only_the_job_output_and_reads_the_status() -> None:
    console = Console("abc")
    stream = (
        b"boot noise\r\nNETPLEX-VM-START-abc\n....\nlast line without newline" + b"NETPLEX-VM-EXIT-abc=3\r\n[reboot]\n"
    )

    shown = b"".join(console.feed(stream[i : i + 1]) for i in range(len(stream)))

    assert shown == b"....\nlast line without newline"
    assert console.status == 3
    assert "boot noise" in console.tail()
    assert console.tail().endswith("[reboot]")


def test_console_passes_output_through_before_a_line_ends() -> None:
    console = Console("abc")
    console.feed(b"NETPLEX-VM-START-abc\n")

    assert console.feed(b"..") == b".."  # pytest's progress dots appear live
    assert console.feed(b"NETPLEX-VM") == b""  # might be the marker: held back
    assert console.feed(b"-EXIT-abc=0\n") == b""
    assert console.status == 0


def test_console_ignores_markers_of_another_run_and_markers_without_status() -> None:
    console = Console("abc")
    console.feed(b"NETPLEX-VM-START-abc\n")

    shown = console.feed(b"NETPLEX-VM-EXIT-xyz=1\nNETPLEX-VM-EXIT-abc=oops\nmore\n")

    assert shown == b"NETPLEX-VM-EXIT-xyz=1\nNETPLEX-VM-EXIT-abc=oops\nmore\n"
    assert console.status is None


def test_console_without_start_marker_shows_nothing() -> None:
    console = Console("abc")

    assert console.feed(b"Kernel panic - not syncing\n") == b""
    assert not console.started
    assert console.tail(lines=1) == "Kernel panic - not syncing"


def test_job_script_round_trips_arguments_and_environment_through_the_shell() -> None:
    job = initramfs.Job(argv=("python", "-c", "print('a b')", "$HOME"), cwd="/w d", env={"A": "x y", "TERM": "dumb"})

    first, second = initramfs.job_script(job).splitlines()

    assert shlex.split(first) == ["cd", "--", "/w d", "||", "exit", "126"]
    assert shlex.split(second) == [
        "exec",
        "/usr/bin/env",
        "-i",
        "--",
        "A=x y",
        "TERM=dumb",
        "python",
        "-c",
        "print('a b')",
        "$HOME",
    ]


def test_env_file_quotes_values() -> None:
    assert shlex.split(initramfs.env_file({"A": "1 2", "B": "it's"})) == ["A=1 2", "B=it's"]


@pytest.mark.parametrize(
    ("cwd", "argv", "free"),
    [
        ("/work/main", ("/work/main/.venv/bin/python", "-m", "pytest"), True),
        ("/tmp/ci/netplex", ("python",), False),
        ("/work/main", ("cat", "/tmp/input"), False),
        ("/tmpfoo", ("true",), True),
    ],
)
def test_tmp_gets_a_fresh_tmpfs_unless_the_job_lives_there(cwd: str, argv: tuple[str, ...], free: bool) -> None:
    assert initramfs.tmp_is_free(initramfs.Job(argv=argv, cwd=cwd, env={})) is free


def test_guest_env_is_clean_with_root_paths_ci_and_extras() -> None:
    host = {"PATH": "/venv/bin:/usr/bin", "CI": "true", "SECRET": "x", "KEEP": "k"}

    env = run.guest_env(host, ["EXTRA=1", "KEEP", "MISSING"], columns=120)

    assert env["PATH"].split(":")[:2] == ["/venv/bin", "/usr/bin"]
    assert "/usr/sbin" in env["PATH"].split(":")
    assert env["PATH"].split(":").count("/usr/bin") == 1
    assert {key: env[key] for key in ("TERM", "NETPLEX_IN_VM", "CI", "EXTRA", "KEEP", "COLUMNS")} == {
        "TERM": "dumb",
        "NETPLEX_IN_VM": "1",
        "CI": "true",
        "EXTRA": "1",
        "KEEP": "k",
        "COLUMNS": "120",
    }
    assert "SECRET" not in env
    assert "MISSING" not in env


def test_auto_accel_picks_kvm_only_with_a_hardware_kvm_module(tmp_path: Path) -> None:
    sys_module = tmp_path / "module"
    (sys_module / "kvm").mkdir(parents=True)
    (sys_module / "kvm_pvm").mkdir()
    device = tmp_path / "kvm"
    device.touch()

    assert qemu.choose_accel("auto", sys_module=sys_module, kvm=device) == "tcg"
    (sys_module / "kvm_intel").mkdir()
    assert qemu.choose_accel("auto", sys_module=sys_module, kvm=device) == "kvm"
    assert qemu.choose_accel("auto", sys_module=sys_module, kvm=tmp_path / "missing") == "tcg"
    assert qemu.choose_accel("tcg", sys_module=sys_module, kvm=device) == "tcg"


def test_qemu_shares_the_root_read_only_and_exits_instead_of_rebooting(tmp_path: Path) -> None:
    guest = kernel.Kernel(release="6.1.0-1-amd64", image=tmp_path / "vmlinux", modules=tmp_path / "modules")

    argv = qemu.command(guest, tmp_path / "initrd", accel="tcg", memory="1G", cpus=2)

    assert argv[argv.index("-machine") + 1] == "q35,accel=tcg"
    assert "-no-reboot" in argv
    fsdev = argv[argv.index("-fsdev") + 1]
    assert "path=/," in fsdev
    assert "readonly=on" in fsdev
    assert "panic=-1" in argv[argv.index("-append") + 1]


def test_extra_nics_are_virtio_pci_devices_on_an_internal_hub_only(tmp_path: Path) -> None:
    guest = kernel.Kernel(release="6.1.0-1-amd64", image=tmp_path / "vmlinux", modules=tmp_path / "modules")

    argv = qemu.command(guest, tmp_path / "initrd", accel="tcg", memory="1G", cpus=2, nics=3)

    netdevs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-netdev"]
    assert netdevs == [f"hubport,id=nic{i},hubid=0" for i in range(3)]  # never user/slirp, tap or socket
    devices = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device" and "virtio-net" in argv[i + 1]]
    assert [d.split(",")[-1] for d in devices] == ["addr=0x10", "addr=0x11", "addr=0x12"]
    assert "-netdev" not in qemu.command(guest, tmp_path / "initrd", accel="tcg", memory="1G", cpus=2)
