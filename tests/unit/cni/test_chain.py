"""cni.chain: a conflist run as a chain, checked against the spec's worked examples (1.x
appendix) with in-process fakes, plus exec'd plugins where the exec path matters."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni import chain, skel
from cni.config import VALID_ATTACHMENTS, Conflist, parse_network
from cni.errors import CniError, Code, MultiError

from .conftest import load_vector, write_script
from .test_config import CAPABILITY_ARGS, SPEC_CONFLIST

AddFn = Callable[[dict[str, Any], skel.CmdArgs], dict[str, Any]]


class Spy:
    """In-process fake plugins that record (type, command, config) for every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.plugins: dict[str, skel.Plugin] = {}
        self.failing: dict[tuple[str, str], CniError] = {}

    def add(self, plugin_type: str, on_add: AddFn | None = None) -> None:
        def record(command: str) -> Callable[[skel.CmdArgs], Any]:
            def verb(args: skel.CmdArgs) -> Any:
                conf = json.loads(args.stdin)
                self.calls.append((plugin_type, command, conf))
                failure = self.failing.get((plugin_type, command))
                if failure is not None:
                    raise failure
                if command == "ADD":
                    return (on_add or passthrough)(conf, args)
                return None

            return verb

        self.plugins[plugin_type] = skel.Plugin(
            add=record("ADD"), delete=record("DEL"), check=record("CHECK"),
            status=record("STATUS"), gc=record("GC"), about=plugin_type,
        )

    def lookup(self, plugin_type: str) -> skel.Plugin | None:
        return self.plugins.get(plugin_type)

    def order(self) -> list[tuple[str, str]]:
        return [(plugin_type, command) for plugin_type, command, _ in self.calls]


def passthrough(conf: dict[str, Any], args: skel.CmdArgs) -> dict[str, Any]:
    prev: dict[str, Any] = conf.get("prevResult") or {}
    return prev


def attachment(command: str = "ADD") -> skel.CmdArgs:
    return skel.CmdArgs(command=command, container_id="3f6940ab5ab4", netns="/var/run/netns/blue", ifname="eth0",
                        path=("/nonexistent",))


def spec_network() -> Conflist:
    return parse_network(copy.deepcopy(SPEC_CONFLIST))


def spec_spy() -> Spy:
    """bridge returns the spec's result, tuning sets the MAC from runtimeConfig, portmap
    passes prevResult through: the spec's Add example."""
    bridge_result = load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["1.1.0"]

    def tuning(conf: dict[str, Any], args: skel.CmdArgs) -> dict[str, Any]:
        result: dict[str, Any] = copy.deepcopy(conf["prevResult"])
        result["interfaces"][2]["mac"] = conf["runtimeConfig"]["mac"]
        return result

    spy = Spy()
    spy.add("bridge", lambda conf, args: copy.deepcopy(bridge_result))
    spy.add("tuning", tuning)
    spy.add("portmap")
    return spy


def final_spec_result() -> dict[str, Any]:
    final: dict[str, Any] = copy.deepcopy(load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["1.1.0"])
    final["interfaces"][2]["mac"] = "00:11:22:33:44:66"
    return final


def spec_request(plugin_type: str, prev: dict[str, Any] | None) -> dict[str, Any]:
    """The request config the spec's appendix shows for each plugin (cniVersion 1.1.0)."""
    plugin = next(p for p in SPEC_CONFLIST["plugins"] if p["type"] == plugin_type)
    request = {"cniVersion": "1.1.0", "name": "dbnet", **{k: v for k, v in plugin.items() if k != "capabilities"}}
    if plugin_type == "tuning":
        request["runtimeConfig"] = {"mac": "00:11:22:33:44:66"}
    if plugin_type == "portmap":
        request["runtimeConfig"] = {"portMappings": CAPABILITY_ARGS["portMappings"]}
    if prev is not None:
        request["prevResult"] = {k: v for k, v in prev.items() if k != "cniVersion"}
    return request


# The spec's worked examples ---------------------------------------------------------------------


def test_add_follows_the_spec_add_example() -> None:
    spy = spec_spy()
    result = chain.add(spec_network(), attachment(), capability_args=CAPABILITY_ARGS, builtins=spy.lookup)
    bridge_result = load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["1.1.0"]
    assert [conf for _, _, conf in spy.calls] == [
        spec_request("bridge", None),
        spec_request("tuning", bridge_result),
        spec_request("portmap", final_spec_result()),
    ]
    assert result.to_wire("1.1.0") == final_spec_result()


def test_check_follows_the_spec_check_example() -> None:
    spy = spec_spy()
    chain.check(spec_network(), attachment("CHECK"), prev_result=final_spec_result(),
                capability_args=CAPABILITY_ARGS, builtins=spy.lookup)
    assert spy.order() == [("bridge", "CHECK"), ("tuning", "CHECK"), ("portmap", "CHECK")]
    assert [conf for _, _, conf in spy.calls] == [
        spec_request(t, final_spec_result()) for t in ("bridge", "tuning", "portmap")
    ]


def test_delete_follows_the_spec_delete_example() -> None:
    spy = spec_spy()
    chain.delete(spec_network(), attachment("DEL"), prev_result=final_spec_result(),
                 capability_args=CAPABILITY_ARGS, builtins=spy.lookup)
    assert spy.order() == [("portmap", "DEL"), ("tuning", "DEL"), ("bridge", "DEL")]
    assert [conf for _, _, conf in spy.calls] == [
        spec_request(t, final_spec_result()) for t in ("portmap", "tuning", "bridge")
    ]


# ADD ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("list_version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_passes_prev_result_in_the_list_version(list_version: str) -> None:
    spy = spec_spy()
    network = parse_network({**SPEC_CONFLIST, "cniVersion": list_version})
    result = chain.add(network, attachment(), capability_args=CAPABILITY_ARGS, builtins=spy.lookup)
    expected = load_vector("spec-1.x-add-example-bridge-result.json")["documents"][list_version]
    tuning_conf = spy.calls[1][2]
    assert tuning_conf["cniVersion"] == list_version
    assert tuning_conf["prevResult"] == {k: v for k, v in expected.items() if k != "cniVersion"}
    assert result.cni_version == list_version


def test_a_plugin_answering_in_another_version_is_handed_on_in_the_list_version(tmp_path: Path) -> None:
    bridge_11 = load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["1.1.0"]
    write_script(tmp_path / "newer", f"import json; print(json.dumps({bridge_11!r}))\n")
    spy = Spy()
    spy.add("tuning")
    network = parse_network({"cniVersion": "0.4.0", "name": "dbnet", "plugins": [{"type": "newer"},
                                                                                  {"type": "tuning"}]})
    result = chain.add(network, attachment().replace(path=(str(tmp_path),)), builtins=spy.lookup, timeout=30)
    expected_040 = load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["0.4.0"]
    assert spy.calls[0][2]["prevResult"] == {k: v for k, v in expected_040.items() if k != "cniVersion"}
    assert result.to_wire("0.4.0") == expected_040


def test_add_stops_at_the_first_failure_with_its_code() -> None:
    spy = spec_spy()
    spy.failing[("tuning", "ADD")] = CniError(Code.TRY_AGAIN_LATER, "sysctl busy", "retry")
    with pytest.raises(CniError) as caught:
        chain.add(spec_network(), attachment(), capability_args=CAPABILITY_ARGS, builtins=spy.lookup)
    assert (caught.value.code, caught.value.msg, caught.value.details) == (11, "sysctl busy", "retry")
    assert spy.order() == [("bridge", "ADD"), ("tuning", "ADD")]


def test_add_refuses_a_plugin_result_that_is_not_a_result() -> None:
    spy = Spy()
    spy.add("broken", lambda conf, args: {"ips": [{"address": "not-an-ip"}]})
    network = parse_network({"cniVersion": "1.0.0", "name": "n", "type": "broken"})
    with pytest.raises(CniError) as caught:
        chain.add(network, attachment(), builtins=spy.lookup)
    assert caught.value.code == Code.DECODING_FAILURE
    assert "'broken'" in caught.value.msg and "ips.0.address" in caught.value.msg


# DEL ---------------------------------------------------------------------------------------------


def test_delete_tries_every_plugin_and_aggregates_failures() -> None:
    spy = spec_spy()
    spy.failing[("portmap", "DEL")] = CniError(Code.IO_FAILURE, "iptables locked")
    spy.failing[("bridge", "DEL")] = CniError(Code.INTERNAL, "veth stuck", "EBUSY")
    with pytest.raises(MultiError) as caught:
        chain.delete(spec_network(), attachment("DEL"), prev_result=final_spec_result(), builtins=spy.lookup)
    assert spy.order() == [("portmap", "DEL"), ("tuning", "DEL"), ("bridge", "DEL")]
    err = caught.value
    assert [e.msg for e in err.errors] == ["iptables locked", "veth stuck"]
    assert (err.code, err.msg, err.details) == (5, "iptables locked; veth stuck", "EBUSY")


def test_delete_with_one_failure_raises_it_as_is() -> None:
    spy = spec_spy()
    failure = CniError(Code.IO_FAILURE, "iptables locked")
    spy.failing[("tuning", "DEL")] = failure
    with pytest.raises(CniError) as caught:
        chain.delete(spec_network(), attachment("DEL"), builtins=spy.lookup)
    assert caught.value is failure
    assert len(spy.calls) == 3


def test_delete_without_prev_result_sends_none() -> None:
    spy = spec_spy()
    chain.delete(spec_network(), attachment("DEL").replace(netns=""), builtins=spy.lookup)
    assert all("prevResult" not in conf for _, _, conf in spy.calls)


def test_delete_goes_on_past_a_missing_binary(tmp_path: Path) -> None:
    spy = Spy()
    spy.add("first")
    spy.add("last")
    network = parse_network({"cniVersion": "1.0.0", "name": "n",
                             "plugins": [{"type": "first"}, {"type": "gone"}, {"type": "last"}]})
    with pytest.raises(CniError) as caught:
        chain.delete(network, attachment("DEL").replace(path=(str(tmp_path),)), builtins=spy.lookup)
    assert spy.order() == [("last", "DEL"), ("first", "DEL")]
    assert "'gone'" in caught.value.msg


# CHECK -------------------------------------------------------------------------------------------


def test_check_is_skipped_when_disable_check() -> None:
    spy = spec_spy()
    network = parse_network({**SPEC_CONFLIST, "disableCheck": True})
    chain.check(network, attachment("CHECK"), prev_result=final_spec_result(), builtins=spy.lookup)
    assert spy.calls == []


def test_check_stops_at_the_first_failure() -> None:
    spy = spec_spy()
    spy.failing[("bridge", "CHECK")] = CniError(Code.INVALID_NETWORK_CONFIG, "eth0: address missing")
    with pytest.raises(CniError) as caught:
        chain.check(spec_network(), attachment("CHECK"), prev_result=final_spec_result(), builtins=spy.lookup)
    assert caught.value.msg == "eth0: address missing"
    assert spy.order() == [("bridge", "CHECK")]


def test_check_of_a_list_older_than_0_4_0_is_error_1() -> None:
    spy = spec_spy()
    network = parse_network({**SPEC_CONFLIST, "cniVersion": "0.3.1"})
    with pytest.raises(CniError) as caught:
        chain.check(network, attachment("CHECK"), prev_result=final_spec_result(), builtins=spy.lookup)
    assert caught.value.code == Code.INCOMPATIBLE_VERSION
    assert spy.calls == []


# STATUS and GC -------------------------------------------------------------------------------------


def test_gc_passes_valid_attachments_and_tries_every_plugin() -> None:
    spy = spec_spy()
    spy.failing[("bridge", "GC")] = CniError(Code.IO_FAILURE, "store locked")
    spy.failing[("portmap", "GC")] = CniError(Code.INTERNAL, "iptables")
    valid = [{"containerID": "3f6940ab5ab4", "ifname": "eth0"}]
    gc_args = skel.CmdArgs(command="GC", path=("/opt/cni/bin",))
    with pytest.raises(MultiError) as caught:
        chain.each(spec_network(), gc_args, extra={VALID_ATTACHMENTS: valid}, builtins=spy.lookup)
    assert spy.order() == [("bridge", "GC"), ("tuning", "GC"), ("portmap", "GC")]
    assert all(conf[VALID_ATTACHMENTS] == valid and conf["name"] == "dbnet" for _, _, conf in spy.calls)
    assert [e.msg for e in caught.value.errors] == ["store locked", "iptables"]


def test_gc_does_nothing_when_disable_gc() -> None:
    spy = spec_spy()
    network = parse_network({**SPEC_CONFLIST, "disableGC": True})
    chain.each(network, skel.CmdArgs(command="GC"), extra={VALID_ATTACHMENTS: []}, builtins=spy.lookup)
    assert spy.calls == []


def test_status_stops_at_the_first_unavailable_plugin() -> None:
    spy = spec_spy()
    spy.failing[("tuning", "STATUS")] = CniError(Code.NOT_AVAILABLE, "not ready")
    with pytest.raises(CniError) as caught:
        chain.each(spec_network(), skel.CmdArgs(command="STATUS"), builtins=spy.lookup)
    assert (caught.value.code, caught.value.msg) == (50, "not ready")
    assert spy.order() == [("bridge", "STATUS"), ("tuning", "STATUS")]


@pytest.mark.parametrize("command", ["STATUS", "GC"])
@pytest.mark.parametrize("list_version", ["0.4.0", "1.0.0"])
def test_status_and_gc_do_nothing_before_1_1_0(command: str, list_version: str) -> None:
    spy = spec_spy()
    network = parse_network({**SPEC_CONFLIST, "cniVersion": list_version})
    chain.each(network, skel.CmdArgs(command=command), builtins=spy.lookup)
    assert spy.calls == []


def test_each_runs_only_status_or_gc() -> None:
    with pytest.raises(ValueError, match="STATUS or GC"):
        chain.each(spec_network(), attachment("ADD"), builtins=spec_spy().lookup)
