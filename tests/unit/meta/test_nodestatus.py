"""`netplex status`: the node's attachments as a table, read from the cache alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta import cache, cli


def record(cni_dir: Path, container_id: str, pod: str, networks: list[tuple[str, str, str | None]]) -> None:
    namespace, name = pod.split("/")
    entry = cache.CacheEntry(
        container_id=container_id, ifname="eth0", pod_namespace=namespace, pod_name=name,
        attachments=[
            cache.CachedAttachment(
                network=network, ifname=ifname, conflist={"name": network.split("/")[-1], "plugins": []},
                state="added" if ip else "pending",
                result={"cniVersion": "1.0.0", "ips": [{"address": ip}]} if ip else None,
            )
            for network, ifname, ip in networks
        ],
    )
    cache.write(str(cni_dir), entry)


def test_status_lists_every_attachment_of_every_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(tmp_path, "aaaa1111bbbb2222", "default/web", [("cluster", "eth0", "10.1.0.5/24"),
                                                        ("default/blue", "net1", "10.2.0.5/24")])
    record(tmp_path, "cccc3333", "prod/db", [("cluster", "eth0", None)])

    assert cli.main(["status", "--cni-dir", str(tmp_path)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["POD", "CONTAINER", "NETWORK", "IFNAME", "STATE", "IPS"]
    rows = sorted(line.split() for line in lines[1:])
    assert rows == [
        ["default/web", "aaaa1111bbbb", "cluster", "eth0", "added", "10.1.0.5/24"],
        ["default/web", "aaaa1111bbbb", "default/blue", "net1", "added", "10.2.0.5/24"],
        ["prod/db", "cccc3333", "cluster", "eth0", "pending", "-"],
    ]


def test_status_of_one_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(tmp_path, "aaaa1111", "default/web", [("cluster", "eth0", "10.1.0.5/24")])
    record(tmp_path, "cccc3333", "prod/db", [("cluster", "eth0", "10.1.0.6/24")])

    assert cli.main(["status", "--cni-dir", str(tmp_path), "--pod", "prod/db"]) == 0

    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["prod/db"]


def test_status_of_an_unknown_pod_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(tmp_path, "aaaa1111", "default/web", [("cluster", "eth0", "10.1.0.5/24")])

    assert cli.main(["status", "--cni-dir", str(tmp_path), "--pod", "default/gone"]) == 1
    assert "no attachments recorded" in capsys.readouterr().out


def test_status_of_an_empty_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--cni-dir", str(tmp_path / "nothing")]) == 0
    assert "no attachments recorded" in capsys.readouterr().out


def test_status_of_one_pod_shows_the_policies_on_each_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from meta.policy import report

    record(tmp_path, "aaaa1111", "default/web", [("cluster", "eth0", "10.1.0.5/24"),
                                                 ("default/blue", "net1", "10.2.0.5/24")])
    report.write(str(tmp_path), "aaaa1111", {"net1": ["default/allow-db", "default/deny"]})

    assert cli.main(["status", "--cni-dir", str(tmp_path), "--pod", "default/web"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split() == ["CONTAINER", "IFNAME", "POLICIES"]
    assert lines[-1].split() == ["aaaa1111", "net1", "default/allow-db,default/deny"]
