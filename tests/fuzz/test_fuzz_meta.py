"""Fuzzing the meta-plugin's parsers: the selection annotation (both forms), the
default-network annotation, the meta config, the daemon config, a NAD's spec.config, and
the daemon's request body. Each refuses bad input with a spec-coded CniError only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni.errors import CniError, Code
from meta import config, daemon_config, daemon_server, netconfs, selection
from tests.fuzz.conftest import FUZZ, holds
from tests.fuzz.strategies import JSON, ODD_TEXT, encoded, shaped

pytestmark = pytest.mark.fuzz

SELECTION_KEYS = ["name", "namespace", "interface", "interfaceRequest", "ips", "mac", "cni-args", "default-route",
                  "portMappings", "bandwidth", "infiniband-guid", "ipam-claim-reference", "x.example.com/key"]
META_KEYS = sorted(config._KNOWN_KEYS)
VALID_META = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster"}
CONF_KEYS = ["cniVersion", "cniVersions", "name", "type", "plugins", "ipam", "dns", "capabilities", "args",
             "runtimeConfig", "disableCheck", "disableGC", "prevResult"]

comma_form = st.lists(
    st.builds(lambda ns, name, ifname: f"{ns}/{name}@{ifname}", ODD_TEXT, ODD_TEXT, ODD_TEXT) | ODD_TEXT, max_size=5
).map(", ".join)
json_form = st.lists(shaped(SELECTION_KEYS) | JSON, max_size=5).map(json.dumps)
annotation = st.one_of(comma_form, json_form, ODD_TEXT, JSON.map(json.dumps))


@FUZZ
@given(annotation)
def test_selection_annotation_is_parsed_or_refused_with_a_cni_error(text: str) -> None:
    holds("selection annotation", selection.parse_selection, text, pod_namespace="default")


@FUZZ
@given(annotation)
def test_default_network_annotation_is_parsed_or_refused_with_a_cni_error(text: str) -> None:
    holds("default-network annotation", selection.parse_default_network, text, namespace="kube-system")


@FUZZ
@given(encoded(shaped(META_KEYS, VALID_META) | JSON))
def test_meta_config_is_loaded_or_refused_with_a_cni_error(raw: bytes) -> None:
    holds("meta config", config.load_meta_conf, raw)


def _daemon_config(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise CniError(Code.DECODING_FAILURE, "not an object")  # what load() says for it
    try:
        daemon_config.parse(doc, environ={})
    except daemon_config.DaemonConfigError as err:  # the daemon's own refusal: exit 2 naming the key
        raise CniError(Code.INVALID_NETWORK_CONFIG, str(err)) from err


@FUZZ
@given(shaped([*META_KEYS, "socketPath", "nodeName", "concurrency", "metricsAddress"]) | JSON)
def test_daemon_config_is_loaded_or_refused_naming_the_key(doc: Any) -> None:
    holds("daemon config", _daemon_config, doc)


@FUZZ
@given(st.one_of(encoded(shaped(CONF_KEYS, {"cniVersion": "1.0.0", "name": "n", "type": "bridge"})),
                 encoded(shaped(CONF_KEYS, {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}]})),
                 ODD_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_nad_spec_config_is_parsed_or_refused_with_a_cni_error(raw: bytes) -> None:
    holds("NAD spec.config", netconfs.parse_config, raw, where="NetworkAttachmentDefinition default/x")


@FUZZ
@given(encoded(shaped(["env", "config"]) | JSON))
def test_daemon_request_body_is_parsed_or_refused_with_error_6(body: bytes) -> None:
    holds("daemon request body", daemon_server.parse_request, body)


@pytest.mark.parametrize("depth", [64, 65, 200_000])
def test_daemon_request_body_bound_answers_before_parsing(depth: int) -> None:
    body = b'{"env": {}, "config": ' + b"[" * depth + b"]" * depth + b"}"
    if depth + 1 <= 64:
        daemon_server.parse_request(body)
    else:
        with pytest.raises(CniError) as caught:
            daemon_server.parse_request(body)
        assert caught.value.code == 6
