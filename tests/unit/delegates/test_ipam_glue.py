"""The IPAM glue the link delegates call: which plugin runs, with what config, and how its
result and errors come back (in-process built-ins, and exec'd binaries from CNI_PATH)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError
from cni.result import Interface, Result
from delegates import ipam
from delegates.bridge import config as bridge_config
from tests.unit.delegates.conftest import VENV_BIN


class BridgeLikeConf(NetConf, frozen=True, kw_only=True):
    bridge: str = "cni0"
    enabledad: bool = False


def conf_of(doc: dict[str, Any]) -> BridgeLikeConf:
    return load_conf(BridgeLikeConf, json.dumps(doc).encode())


def args_for(
    command: str = "ADD", *, doc: dict[str, Any], path: tuple[str, ...] = ("/opt/cni/bin",), **kwargs: Any
) -> skel.CmdArgs:
    """The parent's invocation: its stdin is the config (what the IPAM plugin is given)."""
    return skel.CmdArgs(
        stdin=json.dumps(doc).encode(),
        command=command,
        container_id=kwargs.get("container_id", "ctr"),
        netns="/var/run/netns/x",
        ifname=kwargs.get("ifname", "eth0"),
        args=kwargs.get("cni_args", ""),
        path=path,
    )


def host_local_doc(data_dir: str, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "glue",
        "type": "bridge",
        "bridge": "br-test",
        "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.3.0.0/30"}]]},
        **extra,
    }


@pytest.fixture
def bin_dir(tmp_path: Path) -> str:
    """A CNI_PATH directory whose `host-local` and `static` are the netplex executables."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in ("host-local", "static"):
        os.symlink(os.path.join(VENV_BIN, f"netplex-{name}"), directory / name)
    return str(directory)


class Recorder:
    """A fake IPAM plugin that records the stdin and command it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.plugin = skel.Plugin(
            add=self._add, delete=self._record, check=self._record, status=self._record, gc=self._record, about="rec"
        )

    def lookup(self, plugin_type: str) -> skel.Plugin | None:
        return self.plugin if plugin_type == "recorder" else None

    def _add(self, args: skel.CmdArgs) -> dict[str, Any]:
        self._record(args)
        return {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.9/24", "gateway": "10.0.0.1"}]}

    def _record(self, args: skel.CmdArgs) -> None:
        self.calls.append((args.command, json.loads(args.stdin)))


def test_add_runs_the_builtin_in_process(tmp_path: Path) -> None:
    doc = host_local_doc(str(tmp_path))
    result = ipam.add(conf_of(doc), args_for(doc=doc))
    assert [str(ip.address) for ip in result.ips] == ["10.3.0.2/30"]
    assert str(result.ips[0].gateway) == "10.3.0.1"
    assert result.ips[0].interface is None
    assert result.cni_version == "1.0.0"


def test_add_execs_a_plugin_from_cni_path_with_the_same_result(tmp_path: Path, bin_dir: str) -> None:
    doc_a, doc_b = host_local_doc(str(tmp_path / "a")), host_local_doc(str(tmp_path / "b"))
    in_process = ipam.add(conf_of(doc_a), args_for(doc=doc_a))
    executed = ipam.add(conf_of(doc_b), args_for(doc=doc_b, path=(bin_dir,)), builtins=None)
    assert executed == in_process


def test_the_ipam_plugin_gets_the_parent_config_as_given() -> None:
    recorder = Recorder()
    doc = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "bridge",
        "bridge": "br-x",
        "vendorKey": {"nested": [1, 2]},
        "runtimeConfig": {"ips": ["10.0.0.9"]},
        "ipam": {"type": "recorder", "custom": True},
    }
    result = ipam.add(conf_of(doc), args_for(doc=doc), builtins=recorder.lookup)
    assert recorder.calls == [("ADD", doc)]  # no defaults (enabledad) added, extras kept
    assert [str(ip.address) for ip in result.ips] == ["10.0.0.9/24"]


def test_the_builtin_ipam_matches_the_parent_keys_in_any_case_as_go_does(tmp_path: Path) -> None:
    doc = host_local_doc(str(tmp_path))
    doc["IPAM"] = doc.pop("ipam")  # bridge reads it (Go's decoder): so must host-local, given the same stdin
    result = ipam.add(bridge_config.load(json.dumps(doc)), args_for(doc=doc))
    assert [str(ip.address) for ip in result.ips] == ["10.3.0.2/30"]


@pytest.mark.parametrize(
    ("verb", "command", "version"),
    [
        (ipam.delete, "DEL", "1.0.0"),
        (ipam.check, "CHECK", "1.0.0"),
        (ipam.status, "STATUS", "1.1.0"),
        (ipam.gc, "GC", "1.1.0"),
    ],
)
def test_every_verb_reaches_the_plugin(verb: Any, command: str, version: str) -> None:
    recorder = Recorder()
    doc = {"cniVersion": version, "name": "n", "type": "macvlan", "ipam": {"type": "recorder"}}
    verb(conf_of(doc), args_for(command, doc=doc), builtins=recorder.lookup)
    assert recorder.calls == [(command, doc)]


def test_errors_keep_the_plugin_code_with_a_prefix(tmp_path: Path) -> None:
    doc = host_local_doc(str(tmp_path))
    conf = conf_of(doc)
    ipam.add(conf, args_for(doc=doc, container_id="a"))
    with pytest.raises(CniError) as info:
        ipam.add(conf, args_for(doc=doc, container_id="b"))
    assert info.value.code == 11
    assert info.value.msg == 'ipam "host-local": no IP addresses available in range set 0: 10.3.0.1-10.3.0.2'


def test_exec_errors_keep_the_plugin_code_too(tmp_path: Path, bin_dir: str) -> None:
    doc = host_local_doc(str(tmp_path))
    doc["ipam"]["ranges"] = [[{"subnet": "10.3.0.0/33"}]]
    with pytest.raises(CniError) as info:
        ipam.add(conf_of(doc), args_for(doc=doc, path=(bin_dir,)), builtins=None)
    assert info.value.code == 7
    assert info.value.msg.startswith('ipam "host-local": ipam.ranges.0.0.subnet: invalid CIDR')


def test_delete_releases_through_the_glue(tmp_path: Path) -> None:
    doc = host_local_doc(str(tmp_path))
    conf = conf_of(doc)
    ipam.add(conf, args_for(doc=doc))
    ipam.delete(conf, args_for("DEL", doc=doc))
    assert ipam.add(conf, args_for(doc=doc, container_id="other")).ips[0].address.ip.exploded == "10.3.0.2"


def test_static_runs_in_process() -> None:
    doc = {
        "cniVersion": "1.1.0",
        "name": "s",
        "type": "macvlan",
        "ipam": {"type": "static", "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]},
    }
    result = ipam.add(conf_of(doc), args_for(doc=doc))
    assert [(str(ip.address), str(ip.gateway)) for ip in result.ips] == [("192.0.2.10/24", "192.0.2.1")]


@pytest.mark.parametrize(
    ("ipam_section", "code", "message"),
    [
        (None, 7, "ipam: missing IPAM configuration"),
        ({"subnet": "10.0.0.0/24"}, 7, "ipam.type: missing IPAM plugin type"),
        ({"type": "no-such-ipam"}, 7, 'ipam "no-such-ipam": failed to find plugin'),
    ],
)
def test_config_without_a_usable_ipam_type_is_error_7(
    ipam_section: dict[str, Any] | None, code: int, message: str
) -> None:
    doc: dict[str, Any] = {"cniVersion": "1.0.0", "name": "n", "type": "bridge"}
    if ipam_section is not None:
        doc["ipam"] = ipam_section
    with pytest.raises(CniError) as info:
        ipam.add(conf_of(doc), args_for(doc=doc, path=("/nonexistent",)))
    assert info.value.code == code
    assert info.value.msg.startswith(message)


def test_on_interface_points_every_address_at_the_index() -> None:
    allocated = Result.from_wire(
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}, {"address": "fd00::2/64"}]}
    )
    interfaces = [Interface(name="br0"), Interface(name="veth1"), Interface(name="eth0", sandbox="/var/run/netns/x")]
    result = ipam.on_interface(allocated, interfaces, index=2)
    assert [ip.interface for ip in result.ips] == [2, 2]
    assert result.interfaces == interfaces
    assert allocated.ips[0].interface is None  # the input is left alone
    with pytest.raises(ValueError, match="out of range"):
        ipam.on_interface(allocated, interfaces, index=3)
