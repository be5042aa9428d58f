"""Fuzzing each shipped delegate's config parsing (what a NAD author writes): bridge,
macvlan, ipvlan, host-local and static. Only parsing runs: no link, file or address is
made (host-local's `rangesFile`/`resolvConf` paths are left out, as they read files)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import skel
from cni.config import load_conf
from delegates.bridge import config as bridge_config
from delegates.ipam import hostlocal_config, static
from delegates.ipvlan.plugin import IpvlanConf
from delegates.macvlan.plugin import MacvlanConf
from tests.fuzz.conftest import FUZZ, holds
from tests.fuzz.strategies import JSON, encoded, shaped

pytestmark = pytest.mark.fuzz

BASE = {"cniVersion": "1.0.0", "name": "n"}
ARGS = skel.CmdArgs(command="ADD", container_id="c1", netns="/run/netns/x", ifname="eth0")
IPAM_KEYS = ["type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes", "dataDir", "addresses", "dns"]
ipam = shaped(IPAM_KEYS, {"type": "host-local", "subnet": "10.1.0.0/24"})


def _bridge(raw: bytes) -> None:
    bridge_config.check_for_add(bridge_config.load(raw))


def _host_local(raw: bytes) -> None:
    hostlocal_config.load(raw, ARGS)


def _static(raw: bytes) -> None:
    static.load(raw, ARGS)


TARGETS: dict[str, tuple[Callable[[bytes], Any], list[str]]] = {
    "bridge config": (_bridge, ["type", "bridge", "isGateway", "isDefaultGateway", "ipMasq", "mtu", "hairpinMode",
                                "promiscMode", "vlan", "vlanTrunk", "macspoofchk", "enabledad", "portIsolation",
                                "forceAddress", "disableContainerInterface", "ipam", "runtimeConfig", "args"]),
    "macvlan config": (lambda raw: load_conf(MacvlanConf, raw), ["type", "master", "mode", "mtu", "mac", "ipam",
                                                                  "linkInContainer", "runtimeConfig"]),
    "ipvlan config": (lambda raw: load_conf(IpvlanConf, raw), ["type", "master", "mode", "mtu", "ipam",
                                                                "linkInContainer"]),
    "host-local config": (_host_local, ["ipam", "runtimeConfig", "args"]),
    "static config": (_static, ["ipam", "runtimeConfig", "args"]),
}


def _doc(name: str) -> st.SearchStrategy[bytes]:
    keys = TARGETS[name][1]
    with_ipam = st.builds(lambda doc, section: {**doc, "ipam": section}, shaped(keys, BASE), ipam | JSON)
    return encoded(shaped(keys, BASE) | with_ipam | JSON)


def _no_files(raw: bytes) -> bool:
    """Leave out configs naming files to read (rangesFile, resolvConf)."""
    return b"rangesFile" not in raw and b"resolvConf" not in raw


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_delegate_config_is_loaded_or_refused_with_a_cni_error(target: str) -> None:
    parse = TARGETS[target][0]

    @FUZZ
    @given(_doc(target).filter(_no_files))
    def run(raw: bytes) -> None:
        holds(target, parse, raw)

    run()


def test_the_strategies_reach_a_valid_config_of_each_delegate() -> None:
    """A sanity check that the targets are wired: each parses its minimal config."""
    for target, raw in {
        "bridge config": {**BASE, "type": "bridge", "bridge": "br0"},
        "host-local config": {**BASE, "type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
        "static config": {**BASE, "type": "bridge", "ipam": {"type": "static", "addresses": [
            {"address": "10.1.0.2/24"}]}},
    }.items():
        TARGETS[target][0](json.dumps(raw).encode())
