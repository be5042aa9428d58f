"""Multus's thick-mode keys: aliases of netplex's where the meaning matches, refused with
a message naming what replaces them otherwise; never ignored silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError, Code
from meta import config, daemon_config, main

META = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster"}


def daemon(**keys: Any) -> daemon_config.DaemonConfig:
    return daemon_config.parse(keys, environ={})


def test_socket_dir_and_metrics_port_are_aliases_in_the_daemon_config() -> None:
    parsed = daemon(socketDir="/run/multus", metricsPort=9091)
    assert parsed.socket_path == "/run/multus/netplex.sock"
    assert parsed.metrics_address == ":9091"
    assert "socketDir" not in parsed.meta and "metricsPort" not in parsed.meta


def test_multus_config_file_auto_is_what_install_does_and_a_fixed_file_is_refused() -> None:
    assert "multusConfigFile" not in daemon(multusConfigFile="auto").meta
    with pytest.raises(daemon_config.DaemonConfigError, match=r"multusConfigFile.*netplex install --config"):
        daemon(multusConfigFile="/etc/multus.conf")


@pytest.mark.parametrize(("keys", "needle"), [
    ({"cniConfigDir": "/host/etc/cni/net.d"}, "netplex install --conf-dir"),
    ({"metricsPort": "x"}, "metricsAddress"),
    ({"socketDir": "relative"}, "absolute"),
])
def test_a_thick_key_without_an_equivalent_stops_the_daemon_with_a_clear_error(keys: dict[str, Any],
                                                                                 needle: str) -> None:
    with pytest.raises(daemon_config.DaemonConfigError, match=needle):
        daemon(**keys)


def test_the_shims_socket_dir_is_daemon_socket_for_the_plugin() -> None:
    conf = config.load_meta_conf({**META, "socketDir": "/run/multus"})
    assert conf.daemon_socket == "/run/multus/netplex.sock"
    assert main.daemon_socket(json.dumps({**META, "socketDir": "/run/multus"}).encode()) == "/run/multus/netplex.sock"
    assert main.daemon_socket(json.dumps({**META, "daemonSocket": "/x.sock", "socketDir": "/y"}).encode()) == "/x.sock"


@pytest.mark.parametrize("key", ["metricsPort", "chrootDir", "cniConfigDir"])
def test_a_daemon_key_in_the_plugin_config_is_error_7_naming_it(key: str) -> None:
    with pytest.raises(CniError) as caught:
        config.load_meta_conf({**META, key: 9091 if key == "metricsPort" else "/x"})
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith(f"{key}: ")


def test_chroot_dir_is_a_daemon_key_never_merged_into_requests(tmp_path: Path) -> None:
    parsed = daemon(chrootDir=str(tmp_path))
    assert parsed.chroot_dir == str(tmp_path)
    assert "chrootDir" not in parsed.meta
