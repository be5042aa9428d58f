"""The daemon's request side without namespaces: admission (workers, sandbox locks,
deadlines), the file lock a shim's DEL fallback shares, the CNI answers of requests that
fail before any delegate runs, and the daemon's config file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.errors import CniError
from meta import config, daemon, daemon_config, daemon_lock, daemon_source
from meta.daemon_config import DaemonConfigError


def _daemon(concurrency: int = 2, *, sources: daemon_source.Sources | None = None) -> daemon.Daemon:
    conf = daemon_config.DaemonConfig(
        socket_path="/run/netplex/test.sock", node_name="", concurrency=concurrency, metrics_address="", meta={}
    )
    return daemon.Daemon(conf, sources=sources or daemon_source.LocalSources())


def _meta(tmp_path: Path, **keys: Any) -> config.MetaConf:
    doc = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "x",
           "cniDir": str(tmp_path / "cni")}
    return config.load_meta_conf(doc | keys)


def _args(container_id: str = "c1") -> skel.CmdArgs:
    return skel.CmdArgs(command="ADD", container_id=container_id, ifname="eth0", netns="/run/netns/x")


def _hold(
    served: daemon.Daemon, conf: config.MetaConf, container_id: str, release: threading.Event
) -> threading.Thread:
    """A request that holds its sandbox and a worker until `release`."""
    entered = threading.Event()

    def work() -> None:
        with served._admitted(_args(container_id), conf, time.monotonic() + 30):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    assert entered.wait(5)
    return thread


def test_requests_past_the_worker_limit_wait_then_get_try_again_later(tmp_path: Path) -> None:
    served = _daemon(concurrency=1)
    conf = _meta(tmp_path)
    release = threading.Event()
    holder = _hold(served, conf, "c1", release)
    started = time.monotonic()
    with pytest.raises(CniError, match="all 1 workers stayed taken") as caught, \
            served._admitted(_args("c2"), conf, time.monotonic() + 0.3):
        pass
    assert caught.value.code == 11
    assert 0.25 < time.monotonic() - started < 2
    release.set()
    holder.join()


def test_a_waiting_request_runs_once_a_worker_frees_up(tmp_path: Path) -> None:
    served = _daemon(concurrency=1)
    conf = _meta(tmp_path)
    release = threading.Event()
    holder = _hold(served, conf, "c1", release)
    threading.Timer(0.2, release.set).start()
    with served._admitted(_args("c2"), conf, time.monotonic() + 5) as remaining:
        assert 0 < remaining < 5
    holder.join()


def test_one_sandbox_is_served_one_request_at_a_time(tmp_path: Path) -> None:
    served = _daemon(concurrency=4)
    conf = _meta(tmp_path)
    release = threading.Event()
    holder = _hold(served, conf, "same", release)
    with pytest.raises(CniError, match="'same' is busy") as caught, \
            served._admitted(_args("same"), conf, time.monotonic() + 0.2):
        pass
    assert caught.value.code == 11
    with served._admitted(_args("other"), conf, time.monotonic() + 0.2):  # other sandboxes go on
        pass
    release.set()
    holder.join()
    assert len(served._sandboxes) == 0  # locks are dropped once unused


def test_sandbox_lock_excludes_another_holder_of_the_file(tmp_path: Path) -> None:
    cni_dir = str(tmp_path)
    with daemon_lock.sandbox_lock(cni_dir, "c1", deadline=time.monotonic() + 1):
        with pytest.raises(CniError, match="busy") as caught, \
                daemon_lock.sandbox_lock(cni_dir, "c1", deadline=time.monotonic() + 0.1):
            pass
        assert caught.value.code == 11
        with daemon_lock.sandbox_lock(cni_dir, "c2", deadline=time.monotonic() + 0.1):
            pass
    assert os.listdir(tmp_path / "locks") == []  # the holder removes its file


def test_sandbox_lock_waiter_gets_it_when_released(tmp_path: Path) -> None:
    cni_dir = str(tmp_path)
    order: list[str] = []
    release = threading.Event()

    def first() -> None:
        with daemon_lock.sandbox_lock(cni_dir, "c1", deadline=time.monotonic() + 5):
            order.append("first in")
            release.wait(5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    while not order:
        time.sleep(0.005)
    threading.Timer(0.1, release.set).start()
    with daemon_lock.sandbox_lock(cni_dir, "c1", deadline=time.monotonic() + 5):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_sandbox_lock_refuses_a_container_id_that_is_a_path(tmp_path: Path) -> None:
    with pytest.raises(CniError, match="not a valid container ID") as caught, \
            daemon_lock.sandbox_lock(str(tmp_path), "../etc", deadline=time.monotonic() + 1):
        pass
    assert caught.value.code == 4


# -- answers that need no delegate ---------------------------------------------------------


def _request(command: str, config_doc: dict[str, Any], **env: str) -> dict[str, Any]:
    variables = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
                 "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"} | env
    return {"env": variables, "config": config_doc}


def test_bad_config_is_error_7_naming_the_key() -> None:
    code, output = _daemon().handle_cni(_request("ADD", {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex"}))
    assert code == 1
    assert output["code"] == 7
    assert output["msg"].startswith("clusterNetwork")


def test_bad_environment_is_error_4() -> None:
    doc = {"cniVersion": "0.4.0", "name": "netplex", "type": "netplex", "clusterNetwork": "x"}
    code, output = _daemon().handle_cni(_request("ADD", doc, CNI_CONTAINERID="../x"))
    assert (code, output["code"], output["cniVersion"]) == (1, 4, "0.4.0")


def test_version_is_answered() -> None:
    code, output = _daemon().handle_cni(_request("VERSION", {"cniVersion": "1.0.0"}))
    assert code == 0
    assert "1.1.0" in output["supportedVersions"]


class _Unready(daemon_source.LocalSources):
    @property
    def ready(self) -> bool:
        return False


def test_status_is_50_until_the_caches_are_filled() -> None:
    doc = {"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "clusterNetwork": "x"}
    assert _daemon().handle_cni(_request("STATUS", doc)) == (0, None)
    code, output = _daemon(sources=_Unready()).handle_cni(_request("STATUS", doc))
    assert (code, output["code"]) == (1, 50)


def test_del_of_an_unknown_sandbox_succeeds(tmp_path: Path) -> None:
    doc = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "x",
           "cniDir": str(tmp_path)}
    assert _daemon().handle_cni(_request("DEL", doc)) == (0, None)


# -- the daemon's config file -------------------------------------------------------------


def test_daemon_config_defaults_and_source_mode(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"cniDir": "/var/lib/cni/netplex"}))
    conf = daemon_config.load(str(path), environ={})
    assert (conf.socket_path, conf.concurrency, conf.metrics_address) == ("/run/netplex/netplex.sock", 8, "")
    assert conf.meta == {"cniDir": "/var/lib/cni/netplex"}
    assert conf.source_mode({}) == "local"
    assert conf.source_mode({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "in-cluster"


def test_daemon_config_with_kubernetes_needs_a_node_name(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"kubeconfig": "/etc/kube.conf"}))
    with pytest.raises(DaemonConfigError, match="nodeName"):
        daemon_config.load(str(path), environ={})
    assert daemon_config.load(str(path), environ={"NODE_NAME": "n1"}).node_name == "n1"


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"socketPath": "relative.sock"}, "socketPath"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"metricsAddress": "nonsense"}, "metricsAddress"),
        ({"clusterNetwork": "x", "namespaceIsolation": "yes"}, "namespaceIsolation"),
    ],
)
def test_daemon_config_errors_name_the_key(tmp_path: Path, doc: dict[str, Any], key: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DaemonConfigError, match=key):
        daemon_config.load(str(path), environ={})
