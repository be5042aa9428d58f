"""host-local's disk store: byte-for-byte the reference plugin's layout."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest

from delegates.ipam.hostlocal_store import Reservation, Store

ip = ipaddress.ip_address


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(str(tmp_path), "net1")
    os.makedirs(s.directory)
    return s


def test_reservation_file_is_container_id_crlf_ifname(store: Store, tmp_path: Path) -> None:
    assert store.reserve(ip("10.0.0.2"), container_id="abc123", ifname="eth0", range_set=0)
    path = tmp_path / "net1" / "10.0.0.2"
    assert path.read_bytes() == b"abc123\r\neth0"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert (tmp_path / "net1" / "last_reserved_ip.0").read_bytes() == b"10.0.0.2"


def test_ipv6_file_name_is_the_compressed_form(store: Store, tmp_path: Path) -> None:
    assert store.reserve(ip("fd00:0:0::0a"), container_id="c", ifname="eth0", range_set=1)
    assert (tmp_path / "net1" / "fd00::a").read_bytes() == b"c\r\neth0"
    assert (tmp_path / "net1" / "last_reserved_ip.1").read_bytes() == b"fd00::a"


def test_a_taken_address_is_not_reserved_again(store: Store, tmp_path: Path) -> None:
    assert store.reserve(ip("10.0.0.2"), container_id="a", ifname="eth0", range_set=0)
    assert not store.reserve(ip("10.0.0.2"), container_id="b", ifname="eth0", range_set=0)
    assert (tmp_path / "net1" / "10.0.0.2").read_bytes() == b"a\r\neth0"
    assert [name for name in os.listdir(tmp_path / "net1") if name.startswith(".tmp")] == []


def test_reservations_skip_lock_last_reserved_and_junk(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "net1"
    with store.locked():
        store.reserve(ip("10.0.0.3"), container_id="a", ifname="net1", range_set=0)
    (directory / "10.0.0.9").write_bytes(b"legacy-id\n")
    (directory / "notes.txt").write_bytes(b"x")
    (directory / "010.0.0.4").write_bytes(b"x")  # not the canonical spelling of an address
    assert store.reservations() == [
        Reservation(ip("10.0.0.3"), "a", "net1"),
        Reservation(ip("10.0.0.9"), "legacy-id", None),
    ]
    assert (directory / "lock").exists()


def test_last_reserved_reads_what_reserve_wrote(store: Store) -> None:
    assert store.last_reserved(0) is None
    store.reserve(ip("10.0.0.7"), container_id="a", ifname="eth0", range_set=0)
    assert store.last_reserved(0) == ip("10.0.0.7")


def test_the_hint_is_overwritten_in_place_whatever_its_length(store: Store, tmp_path: Path) -> None:
    hint = tmp_path / "net1" / "last_reserved_ip.0"
    store.reserve(ip("10.0.0.100"), container_id="a", ifname="eth0", range_set=0)
    inode = hint.stat().st_ino
    store.reserve(ip("10.0.0.9"), container_id="b", ifname="eth0", range_set=0)
    assert hint.read_bytes() == b"10.0.0.9" and hint.stat().st_ino == inode  # shorter: cut to length
    store.reserve(ip("10.0.0.254"), container_id="c", ifname="eth0", range_set=0)
    assert store.last_reserved(0) == ip("10.0.0.254")
    assert not [name for name in os.listdir(tmp_path / "net1") if name.startswith(".tmp")]


def test_a_hint_cut_short_by_a_crash_is_no_hint(store: Store, tmp_path: Path) -> None:
    (tmp_path / "net1" / "last_reserved_ip.0").write_bytes(b"10.0.")
    assert store.last_reserved(0) is None


def test_release_frees_only_that_interface(store: Store) -> None:
    store.reserve(ip("10.0.0.2"), container_id="c", ifname="eth0", range_set=0)
    store.reserve(ip("10.0.0.3"), container_id="c", ifname="net1", range_set=0)
    assert store.release("c", "eth0") == [ip("10.0.0.2")]
    assert [r.ip for r in store.reservations()] == [ip("10.0.0.3")]
    assert store.release("c", "eth0") == []


def test_release_falls_back_to_legacy_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "net1" / "10.0.0.9").write_bytes(b"old-container")
    assert store.held_by("old-container", "eth0") == [Reservation(ip("10.0.0.9"), "old-container", None)]
    assert store.release("old-container", "eth0") == [ip("10.0.0.9")]
    assert store.reservations() == []


def test_release_prefers_exact_matches_over_legacy_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "net1" / "10.0.0.9").write_bytes(b"c")
    store.reserve(ip("10.0.0.2"), container_id="c", ifname="eth0", range_set=0)
    assert store.release("c", "eth0") == [ip("10.0.0.2")]
    assert [r.ip for r in store.reservations()] == [ip("10.0.0.9")]


def test_stale_temporaries_are_removed(store: Store, tmp_path: Path) -> None:
    (tmp_path / "net1" / ".tmp-reserve-abc.part").write_bytes(b"c\r\neth0")
    assert store.remove_stale_temporaries() == 1
    assert os.listdir(tmp_path / "net1") == []


def test_missing_directory_has_no_reservations(tmp_path: Path) -> None:
    store = Store(str(tmp_path), "absent")
    assert not store.exists()
    assert store.reservations() == []
