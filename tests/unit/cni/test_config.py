"""cni.config: config models that pass over unknown keys, loading with errors that name the key,
and deriving one plugin's execution config from a conflist (CNI spec section 3)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni import config, decode
from cni.config import Conflist, NetConf, load_conf, parse_network, plugin_config
from cni.errors import CniError, Code

from .conftest import load_vector

# The spec's example conflist (section 1, 1.x): bridge, tuning (mac), portmap (portMappings).
SPEC_CONFLIST: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "name": "dbnet",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cni0",
            "keyA": ["some more", "plugin specific", "configuration"],
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "gateway": "10.1.0.1"},
            "dns": {"nameservers": ["10.1.0.1"]},
        },
        {"type": "tuning", "capabilities": {"mac": True}, "sysctl": {"net.core.somaxconn": "500"}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
CAPABILITY_ARGS = {
    "mac": "00:11:22:33:44:66",
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
}


class MtuConf(NetConf, frozen=True, kw_only=True):
    mtu: Annotated[int, msgspec.Meta(ge=68)] = 1500


def test_netconf_passes_over_unknown_keys() -> None:
    raw = {"cniVersion": "1.0.0", "name": "dbnet", "type": "bridge", "bridge": "cni0", "keyA": [1, {"b": None}]}
    conf = load_conf(NetConf, json.dumps(raw).encode())
    assert (conf.name, conf.type, conf.version) == ("dbnet", "bridge", "1.0.0")
    assert decode.unknown_keys(raw, NetConf) == ["bridge", "keyA"]
    assert conf.given_valid_attachments("absent") == "absent"


def test_netconf_reads_gcs_valid_attachments() -> None:
    attachments = [{"containerID": "c1", "ifname": "eth0"}]
    conf = load_conf(NetConf, {"name": "n", config.VALID_ATTACHMENTS: attachments})
    assert conf.given_valid_attachments() == attachments
    assert load_conf(NetConf, {"name": "n", config.VALID_ATTACHMENTS: []}).given_valid_attachments("absent") == []


def test_conflist_keeps_its_plugins_unknown_keys() -> None:
    raw = {**SPEC_CONFLIST, "vendorKey": {"x": 1}}
    conflist = parse_network(json.dumps(raw))
    assert conflist.plugins == SPEC_CONFLIST["plugins"]
    assert conflist.to_doc() == {key: value for key, value in SPEC_CONFLIST.items()} | {
        "disableCheck": False, "disableGC": False, "loadOnlyInlinedPlugins": False}


@pytest.mark.parametrize(("given", "expected"), [(True, True), ("true", True), ("FALSE", False), (False, False)])
def test_conflist_booleans_are_read_as_libcni_reads_them(given: Any, expected: bool) -> None:
    conflist = Conflist.from_doc({"name": "n", "disableCheck": given, "plugins": [{"type": "bridge"}]})
    assert conflist.disable_check is expected


@pytest.mark.parametrize("given", ["yes", 1, None])
def test_a_conflist_boolean_that_libcni_refuses_is_error_7(given: Any) -> None:
    with pytest.raises(CniError) as caught:
        Conflist.from_doc({"name": "n", "disableGC": given, "plugins": [{"type": "bridge"}]})
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith("disableGC: ")


def test_netconf_reads_the_spec_fields() -> None:
    conf = load_conf(
        NetConf,
        {
            "cniVersion": "1.0.0",
            "cniVersions": ["1.0.0", "1.1.0"],
            "name": "dbnet",
            "type": "bridge",
            "capabilities": {"mac": True},
            "ipam": {"type": "host-local"},
            "dns": {"nameservers": ["10.1.0.1"], "search": ["a"]},
            "args": {"cni": {"ips": ["10.1.0.9"]}},
            "runtimeConfig": {"mac": "00:11:22:33:44:66"},
        },
    )
    assert conf.version == "1.1.0"
    assert conf.capabilities == {"mac": True}
    assert conf.dns is not None and conf.dns.search == ["a"]
    assert conf.runtime_config == {"mac": "00:11:22:33:44:66"}
    assert conf.previous_result() is None


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"{not json", Code.DECODING_FAILURE, "config is not valid JSON"),
        (b"[1, 2]", Code.DECODING_FAILURE, "config is not a JSON object"),
        (b'{"name": "n", "mtu": "jumbo"}', Code.INVALID_NETWORK_CONFIG, "mtu: "),
        (b'{"name": "n", "mtu": 10}', Code.INVALID_NETWORK_CONFIG, "mtu: "),
        (b'{"name": "n", "cniVersion": 1}', Code.INVALID_NETWORK_CONFIG, "cniVersion: "),
        (b'{"name": "n", "capabilities": {"mac": "maybe"}}', Code.INVALID_NETWORK_CONFIG, "capabilities.mac: "),
        (b'{"name": "n", "dns": {"nameservers": "10.0.0.1"}}', Code.INVALID_NETWORK_CONFIG, "dns.nameservers: "),
    ],
)
def test_load_conf_errors_name_the_key(raw: bytes, code: int, message: str) -> None:
    with pytest.raises(CniError) as caught:
        load_conf(MtuConf, raw)
    assert caught.value.code == code
    assert caught.value.msg.startswith(message)


def test_previous_result_is_read_in_the_config_version() -> None:
    vector = load_vector("spec-0.4.0-list-example-prev-result.json")
    conf = load_conf(NetConf, {"cniVersion": "0.4.0", "name": "dbnet", "type": "tuning",
                               "prevResult": vector["as_written"]})
    prev = conf.previous_result()
    assert prev is not None
    assert prev.cni_version == "0.4.0"
    assert prev.to_wire("0.4.0") == vector["documents"]["0.4.0"]


def test_a_bad_prev_result_is_an_error_naming_prev_result() -> None:
    conf = load_conf(NetConf, {"cniVersion": "1.0.0", "name": "n", "prevResult": {"ips": [{"address": "x"}]}})
    with pytest.raises(CniError) as caught:
        conf.previous_result()
    assert caught.value.code == Code.DECODING_FAILURE
    assert caught.value.msg.startswith("prevResult.ips.0.address")


def test_plugin_config_matches_the_spec_add_example() -> None:
    """Spec 1.x appendix: the tuning plugin gets name, cniVersion, runtimeConfig.mac and the
    bridge's result as prevResult; its `capabilities` is removed."""
    bridge_result = load_vector("spec-1.x-add-example-bridge-result.json")["documents"]["1.1.0"]
    conf = plugin_config(
        SPEC_CONFLIST["plugins"][1], name="dbnet", cni_version="1.1.0",
        capability_args=CAPABILITY_ARGS, prev_result=bridge_result,
    )
    expected_prev = {key: value for key, value in bridge_result.items() if key != "cniVersion"}
    assert conf == {
        "cniVersion": "1.1.0",
        "name": "dbnet",
        "type": "tuning",
        "sysctl": {"net.core.somaxconn": "500"},
        "runtimeConfig": {"mac": "00:11:22:33:44:66"},
        "prevResult": expected_prev,
    }


def test_plugin_config_for_the_first_plugin_has_no_runtime_config_or_prev_result() -> None:
    conf = plugin_config(SPEC_CONFLIST["plugins"][0], name="dbnet", cni_version="1.0.0",
                         capability_args=CAPABILITY_ARGS)
    assert conf == {"cniVersion": "1.0.0", "name": "dbnet", **SPEC_CONFLIST["plugins"][0]}


def test_portmap_gets_only_the_capability_it_declares() -> None:
    conf = plugin_config(SPEC_CONFLIST["plugins"][2], name="dbnet", cni_version="1.0.0",
                         capability_args=CAPABILITY_ARGS)
    assert conf["runtimeConfig"] == {"portMappings": CAPABILITY_ARGS["portMappings"]}
    assert "capabilities" not in conf


def test_plugin_config_overrides_name_and_version_and_drops_stale_keys() -> None:
    plugin = {"type": "x", "name": "other", "cniVersion": "0.3.0", "cniVersions": ["0.3.0"],
              "prevResult": {"stale": True}, "runtimeConfig": {"kept": 1}, "capabilities": {"mac": False}}
    conf = plugin_config(plugin, name="dbnet", cni_version="1.0.0", capability_args=CAPABILITY_ARGS)
    assert conf == {"type": "x", "name": "dbnet", "cniVersion": "1.0.0", "runtimeConfig": {"kept": 1}}
    assert plugin["prevResult"] == {"stale": True}  # the entry itself is left alone


def test_declared_runtime_config_is_merged_with_capability_args() -> None:
    plugin = {"type": "x", "runtimeConfig": {"kept": 1, "mac": "old"}, "capabilities": {"mac": True}}
    conf = plugin_config(plugin, name="n", cni_version="1.0.0", capability_args=CAPABILITY_ARGS)
    assert conf["runtimeConfig"] == {"kept": 1, "mac": "00:11:22:33:44:66"}


@pytest.mark.parametrize("prev_version", ["0.3.0", "0.4.0", "1.0.0", "1.1.0"])
def test_prev_result_is_handed_on_in_the_config_version(prev_version: str) -> None:
    vector = load_vector("spec-1.x-add-example-bridge-result.json")
    conf = plugin_config({"type": "x"}, name="dbnet", cni_version="0.3.1",
                         prev_result=vector["documents"][prev_version])
    expected = {k: v for k, v in vector["documents"]["0.3.1"].items() if k != "cniVersion"}
    assert conf["prevResult"] == expected


def test_runtime_config_selects_declared_capabilities_only() -> None:
    caps = {"mac": True, "ips": False, "bandwidth": True}
    assert config.runtime_config(caps, {"mac": "m", "ips": ["10.0.0.2"], "portMappings": []}) == {"mac": "m"}


def test_a_single_plugin_config_becomes_a_one_plugin_list() -> None:
    single = {"cniVersion": "0.4.0", "name": "dbnet", "type": "bridge", "bridge": "cni0"}
    conflist = parse_network(json.dumps(single).encode())
    assert (conflist.name, conflist.version) == ("dbnet", "0.4.0")
    assert conflist.plugins == [{"type": "bridge", "bridge": "cni0"}]
    assert plugin_config(conflist.plugins[0], name=conflist.name, cni_version=conflist.version) == single


def test_conflist_flags_and_negotiated_version() -> None:
    conflist = parse_network({**SPEC_CONFLIST, "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"],
                              "disableCheck": "true", "disableGC": True})
    assert conflist.version == "1.1.0"
    assert conflist.disable_check is True
    assert conflist.disable_gc is True
    assert isinstance(conflist, Conflist)


@pytest.mark.parametrize(
    ("doc", "code", "fragment"),
    [
        (b"{", Code.DECODING_FAILURE, "config: not valid JSON"),
        (b"[]", Code.DECODING_FAILURE, "config: not a JSON object"),
        ({"cniVersion": "1.0.0", "name": "n"}, Code.INVALID_NETWORK_CONFIG, "type: missing plugin type"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, Code.INVALID_NETWORK_CONFIG, "plugins"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": ""}]}, Code.INVALID_NETWORK_CONFIG,
         "plugins.0.type"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a"}, "b"]}, Code.INVALID_NETWORK_CONFIG,
         "plugins.1"),
        ({"cniVersion": "1.0.0", "name": "bad name", "type": "a"}, Code.INVALID_NETWORK_CONFIG, "name: invalid"),
        ({"cniVersion": "1.0.0", "type": "a"}, Code.INVALID_NETWORK_CONFIG, "name"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a"}], "disableCheck": "perhaps"},
         Code.INVALID_NETWORK_CONFIG, "disableCheck"),
        ({"cniVersion": "0.2.0", "name": "n", "type": "a"}, Code.INCOMPATIBLE_VERSION, "config: incompatible"),
    ],
)
def test_parse_network_errors(doc: Any, code: int, fragment: str) -> None:
    with pytest.raises(CniError) as caught:
        parse_network(doc)
    assert caught.value.code == code
    assert fragment in caught.value.msg


def test_valid_attachments_key_is_the_spec_key() -> None:
    assert config.VALID_ATTACHMENTS == "cni.dev/valid-attachments"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["cniVersion", "name", "type", "mtu", "capabilities", "dns",
                                                  "ipam", "prevResult", "runtimeConfig", "other"]),
                                 st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                                           st.lists(st.integers(), max_size=2),
                                           st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2)))
                 .map(lambda d: json.dumps(d).encode())))
def test_load_conf_gives_a_model_or_a_cni_error(raw: bytes) -> None:
    try:
        conf = load_conf(MtuConf, raw)
    except CniError as err:
        assert err.code in (Code.DECODING_FAILURE, Code.INVALID_NETWORK_CONFIG)
        assert "\n" not in err.msg
    else:
        assert isinstance(conf, MtuConf)
