"""The daemon config's `hotplug` key (meta/daemon_config.py)."""

from __future__ import annotations

import pytest

from meta import daemon_config


def test_hotplug_is_on_by_default() -> None:
    assert daemon_config.parse({}, environ={}).hotplug is True


def test_hotplug_false_switches_it_off_and_stays_out_of_the_meta_config() -> None:
    conf = daemon_config.parse({"hotplug": False, "cniDir": "/tmp/x"}, environ={})
    assert conf.hotplug is False and "hotplug" not in conf.meta and conf.meta["cniDir"] == "/tmp/x"


def test_a_hotplug_value_that_is_not_a_boolean_is_refused_naming_the_key() -> None:
    with pytest.raises(daemon_config.DaemonConfigError, match="hotplug: want true or false"):
        daemon_config.parse({"hotplug": "no"}, environ={})
