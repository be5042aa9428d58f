"""meta/cache.py: what netplex recorded for a sandbox, so that DEL always works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cni import store
from cni.errors import CniError, Code
from meta import cache


def entry(container_id: str = "c1", ifname: str = "eth0", **keys: object) -> cache.CacheEntry:
    attachments = [
        cache.CachedAttachment(
            network="kube-system/cluster", ifname=ifname, is_cluster_network=True,
            conflist={"cniVersion": "1.0.0", "name": "cluster", "plugins": [{"type": "bridge"}]},
            capability_args={"portMappings": [{"hostPort": 80, "containerPort": 8080}]},
            cni_args="K8S_POD_NAME=web", state="added",
            result={"cniVersion": "1.0.0", "interfaces": [{"name": ifname}]},
        ),
        cache.CachedAttachment(
            network="default/blue", ifname="net1",
            conflist={"cniVersion": "1.0.0", "name": "blue", "plugins": [{"type": "macvlan"}]},
            default_route=["10.1.0.1"],
        ),
    ]
    doc = {"container_id": container_id, "ifname": ifname, "netns": "/run/netns/p", "pod_namespace": "default",
           "pod_name": "web", "pod_uid": "u1", "cni_version": "1.0.0", "attachments": attachments}
    return cache.CacheEntry(**(doc | keys))


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    written = entry()
    cache.write(str(tmp_path), written)
    read = cache.read(str(tmp_path), "c1", "eth0")
    assert read == written
    assert read is not None and read.pod == "default/web"
    assert [a.state for a in read.attachments] == ["added", "pending"]


def test_file_uses_wire_names_and_is_private(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry())
    path = cache.path_for(str(tmp_path), "c1", "eth0")
    assert path == str(tmp_path / "cache" / "c1-eth0.json")
    doc = store.read_json(path)
    assert doc is not None
    assert doc["containerID"] == "c1" and doc["attachments"][0]["isClusterNetwork"] is True
    assert doc["attachments"][1]["defaultRoute"] == ["10.1.0.1"]
    assert os.stat(path).st_mode & 0o077 == 0


def test_read_of_nothing_recorded_is_none(tmp_path: Path) -> None:
    assert cache.read(str(tmp_path), "c1", "eth0") is None


def test_remove_is_idempotent(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry())
    cache.remove(str(tmp_path), "c1", "eth0")
    cache.remove(str(tmp_path), "c1", "eth0")
    assert cache.read(str(tmp_path), "c1", "eth0") is None


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.write(str(tmp_path), entry(netns="/run/netns/old"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CniError) as caught:
        cache.write(str(tmp_path), entry(netns="/run/netns/new"))
    assert caught.value.code == Code.IO_FAILURE
    assert "cniDir" in caught.value.msg and "No space left" in caught.value.msg
    monkeypatch.undo()
    assert os.listdir(tmp_path / "cache") == ["c1-eth0.json"]
    read = cache.read(str(tmp_path), "c1", "eth0")
    assert read is not None and read.netns == "/run/netns/old"


def test_write_replaces_atomically(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry())
    before = os.stat(cache.path_for(str(tmp_path), "c1", "eth0")).st_ino
    cache.write(str(tmp_path), entry(netns="/run/netns/other"))
    after = os.stat(cache.path_for(str(tmp_path), "c1", "eth0")).st_ino
    assert before != after  # a new file renamed over the old, never rewritten in place
    assert os.listdir(tmp_path / "cache") == ["c1-eth0.json"]


@pytest.mark.parametrize(
    ("container_id", "ifname", "named"),
    [
        ("../../etc/passwd", "eth0", "CNI_CONTAINERID"),
        ("a/b", "eth0", "CNI_CONTAINERID"),
        ("", "eth0", "CNI_CONTAINERID"),
        (".hidden", "eth0", "CNI_CONTAINERID"),
        ("c1", "../x", "CNI_IFNAME"),
        ("c1", "..", "CNI_IFNAME"),
        ("c1", "a/b", "CNI_IFNAME"),
    ],
)
def test_path_traversal_is_refused(tmp_path: Path, container_id: str, ifname: str, named: str) -> None:
    for attempt in (
        lambda: cache.path_for(str(tmp_path), container_id, ifname),
        lambda: cache.read(str(tmp_path), container_id, ifname),
        lambda: cache.remove(str(tmp_path), container_id, ifname),
    ):
        with pytest.raises(CniError) as caught:
            attempt()
        assert caught.value.code == Code.INVALID_ENVIRONMENT and named in caught.value.msg
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_an_entry_with_a_bad_container_id(tmp_path: Path) -> None:
    with pytest.raises(CniError):
        cache.write(str(tmp_path), entry(container_id="../evil"))
    assert list(tmp_path.rglob("*.json")) == []


@pytest.mark.parametrize(
    "torn", [b"", b"\0" * 64, b'{"containerID": "c1"', b'{"containerID": "c1", "attachments": [{"net']
)
def test_an_empty_or_cut_short_file_records_nothing_and_goes(tmp_path: Path, torn: bytes) -> None:
    path = Path(cache.path_for(str(tmp_path), "c1", "eth0"))
    path.parent.mkdir(parents=True)
    path.write_bytes(torn)  # what a power loss can leave of a write without fsync
    assert cache.read(str(tmp_path), "c1", "eth0") is None
    assert not path.exists()


def test_read_of_a_corrupt_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = Path(cache.path_for(str(tmp_path), "c1", "eth0"))
    path.parent.mkdir(parents=True)
    path.write_text("garbage, not JSON")
    with pytest.raises(CniError) as caught:
        cache.read(str(tmp_path), "c1", "eth0")
    assert caught.value.code == Code.DECODING_FAILURE and str(path) in caught.value.msg
    path.write_text('{"hello": "world"}')
    with pytest.raises(CniError) as caught:
        cache.read(str(tmp_path), "c1", "eth0")
    assert caught.value.code == Code.DECODING_FAILURE and "not a netplex cache" in caught.value.msg


def test_list_entries_skips_corrupt_files_and_temporaries(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry("c1"))
    cache.write(str(tmp_path), entry("c2"))
    directory = tmp_path / "cache"
    (directory / "c3-eth0.json").write_text("{torn")
    (directory / "c4-eth0.json").write_text('{"not": "an entry"}')
    (directory / "c5-eth0.json").write_bytes(b"\xff\xfe")
    (directory / f"{store.TMP_PREFIX}abc{store.TMP_SUFFIX}").write_text("{}")
    (directory / "notes.txt").write_text("hello")
    assert [e.container_id for e in cache.list_entries(str(tmp_path))] == ["c1", "c2"]


def test_list_entries_of_a_missing_dir_is_empty(tmp_path: Path) -> None:
    assert cache.list_entries(str(tmp_path / "nowhere")) == []


def test_ids_and_ifnames_with_dashes_never_share_a_file(tmp_path: Path) -> None:
    pairs = [("a-b", "c"), ("a", "b-c"), ("a-b-c", "eth0"), ("a", "b-c-eth0"), ("a-b", "c-eth0"), ("a", "x@y")]
    paths = {cache.path_for(str(tmp_path), container_id, ifname) for container_id, ifname in pairs}
    assert len(paths) == len(pairs)
    for container_id, ifname in pairs:
        cache.write(str(tmp_path), entry(container_id, ifname))
    for container_id, ifname in pairs:
        read = cache.read(str(tmp_path), container_id, ifname)
        assert read is not None and (read.container_id, read.ifname) == (container_id, ifname)
    assert len(cache.list_entries(str(tmp_path))) == len(pairs)


def test_read_refuses_a_file_recording_another_sandbox(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry("c1"))
    os.rename(cache.path_for(str(tmp_path), "c1", "eth0"), cache.path_for(str(tmp_path), "c2", "eth0"))
    with pytest.raises(CniError) as caught:
        cache.read(str(tmp_path), "c2", "eth0")
    assert caught.value.code == Code.DECODING_FAILURE and "'c1'" in caught.value.msg
