"""Fuzzing the protocol library's parsers: the CNI_* environment with CNI_ARGS, the stdin
config the skeleton reads, and result conversion between versions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import args as cni_args
from cni import result, skel, version
from tests.fuzz.conftest import FUZZ, holds
from tests.fuzz.strategies import JSON, ODD_TEXT, SCALAR, encoded, shaped

pytestmark = pytest.mark.fuzz

ENV_KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
args_text = st.one_of(
    ODD_TEXT,
    st.lists(st.builds(lambda k, v: f"{k}={v}", ODD_TEXT, ODD_TEXT) | ODD_TEXT, max_size=5).map(";".join),
)
environment = st.fixed_dictionaries(
    {"CNI_COMMAND": st.sampled_from([*skel.COMMANDS, "", "add", "EXPLODE"])},
    optional={
        "CNI_CONTAINERID": ODD_TEXT | st.just("c1"),
        "CNI_NETNS": ODD_TEXT | st.just("/run/netns/x"),
        "CNI_IFNAME": ODD_TEXT | st.just("eth0"),
        "CNI_ARGS": args_text,
        "CNI_PATH": ODD_TEXT,
    },
)


@FUZZ
@given(environment, st.binary(max_size=64))
def test_cni_environment_is_parsed_or_refused_with_a_cni_error(env: dict[str, str], stdin: bytes) -> None:
    holds("CNI env", skel.parse_env, env, stdin)


@FUZZ
@given(args_text)
def test_cni_args_are_parsed_or_refused_with_a_cni_error(text: str) -> None:
    holds("CNI_ARGS", cni_args.parse_cni_args, text)


def _stdin(raw: bytes) -> None:
    conf = skel.load_json(raw)
    skel.config_version(conf)
    skel.validate_network_name(conf.get("name"))


@FUZZ
@given(encoded(shaped(["cniVersion", "cniVersions", "name", "type"], {"cniVersion": "1.0.0", "name": "n"}) | JSON))
def test_stdin_config_is_read_or_refused_with_a_cni_error(raw: bytes) -> None:
    holds("stdin config", _stdin, raw)


RESULT_KEYS = ["cniVersion", "interfaces", "ips", "routes", "dns", "ip4", "ip6"]
interface = shaped(["name", "mac", "sandbox", "mtu", "socketPath", "pciID"], {"name": "eth0"})
ip_config = shaped(["address", "gateway", "interface", "version"], {"address": "10.0.0.2/24"})
route = shaped(["dst", "gw", "mtu", "advmss", "priority", "table", "scope"], {"dst": "0.0.0.0/0"})
result_doc = st.builds(
    lambda base, ifaces, ips, routes: {**base, "interfaces": ifaces, "ips": ips, "routes": routes},
    shaped(RESULT_KEYS, {"cniVersion": "1.0.0"}),
    st.lists(interface | SCALAR, max_size=3),
    st.lists(ip_config | SCALAR, max_size=3),
    st.lists(route | SCALAR, max_size=3),
)


@FUZZ
@given(result_doc | JSON, st.sampled_from(sorted(version.SUPPORTED_VERSIONS)))
def test_result_conversion_gives_a_result_or_a_cni_error(doc: Any, target: str) -> None:
    holds("result conversion", result.convert, doc, target)
