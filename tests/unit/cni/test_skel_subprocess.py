"""The skeleton as a runtime meets it: real executables run as subprocesses with the CNI
environment and the config on stdin. No root needed.

The shipped console scripts (`netplex-static`, `netplex-bridge`) answer VERSION and the
generic env/config checks before their plugin module is loaded (cni.skel.run_lazy), so
those are tested on them; behaviour past the generic checks is tested on a throwaway plugin
written into tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import VENV_BIN, cni_env, config, subprocess_env, write_script

CONSOLE_SCRIPTS = ["netplex-static", "netplex-bridge"]
HEAVY_MODULES = ("pydantic", "pydantic_core", "msgspec", "pyroute2", "kubernetes")
PODMAN_VERSION_ENV = {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "", "CNI_NETNS": "dummy",
                      "CNI_IFNAME": "dummy", "CNI_PATH": "dummy"}


def execute(executable: Path | str, environ: dict[str, str], stdin: bytes,
            *, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, *python_flags, str(executable)] if python_flags else [str(executable)]
    return subprocess.run(argv, input=stdin, env=subprocess_env(environ), capture_output=True, timeout=60,
                          check=False)


def only_json(proc: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    """stdout must be exactly one JSON object on one line, whatever happened."""
    text = proc.stdout.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    doc: dict[str, Any] = json.loads(lines[0])
    return doc


def expect_error(proc: subprocess.CompletedProcess[bytes], code: int, msg_start: str) -> dict[str, Any]:
    assert proc.returncode != 0
    err = only_json(proc)
    assert err["code"] == code, err
    assert err["msg"].startswith(msg_start), err
    return err


@pytest.fixture(params=CONSOLE_SCRIPTS)
def console_script(request: pytest.FixtureRequest) -> Path:
    path = VENV_BIN / str(request.param)
    if not path.exists():
        pytest.fail(f"{path} is not installed: run the project's setup (pip install -e .)")
    return path


# Shipped console scripts -----------------------------------------------------------------


def test_version_with_podman_dummy_values(console_script: Path) -> None:
    proc = execute(console_script, PODMAN_VERSION_ENV, b'{"cniVersion":"1.0.0"}')
    assert proc.returncode == 0, proc.stderr
    assert only_json(proc) == {"cniVersion": "1.0.0",
                               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_version_with_no_stdin_at_all(console_script: Path) -> None:
    proc = execute(console_script, {"CNI_COMMAND": "VERSION"}, b"")
    assert proc.returncode == 0, proc.stderr
    assert only_json(proc)["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("variable", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_a_missing_variable_is_error_4_naming_it(console_script: Path, variable: str) -> None:
    proc = execute(console_script, cni_env("ADD", **{variable: "-"}), config())
    expect_error(proc, 4, f"{variable} is required for ADD")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CNI_COMMAND", "INIT"), ("CNI_CONTAINERID", "../../etc"), ("CNI_IFNAME", "eth0:1"),
     ("CNI_IFNAME", "a-very-long-ifname"), ("CNI_NETNS", "relative/path"), ("CNI_ARGS", "K8S_POD_NAME")],
)
def test_a_bad_variable_is_error_4_naming_it(console_script: Path, variable: str, value: str) -> None:
    proc = execute(console_script, cni_env("ADD", **{variable: value}), config())
    expect_error(proc, 4, variable)


def test_bad_json_is_error_6(console_script: Path) -> None:
    proc = execute(console_script, cni_env("ADD"), b'{"cniVersion": "1.0.0", "name": ')
    err = expect_error(proc, 6, "config is not valid JSON")
    assert err["cniVersion"] == "1.1.0"


def test_an_unsupported_version_is_error_1(console_script: Path) -> None:
    proc = execute(console_script, cni_env("ADD"), config("0.2.0"))
    expect_error(proc, 1, "incompatible CNI versions")


def test_an_invalid_config_is_error_7_naming_the_key(console_script: Path) -> None:
    proc = execute(console_script, cni_env("DEL"), json.dumps({"cniVersion": "0.4.0", "name": "a/b"}).encode())
    err = expect_error(proc, 7, "name: invalid characters")
    assert err["cniVersion"] == "0.4.0"  # errors answer in the config's version
    proc = execute(console_script, cni_env("ADD"), json.dumps({"cniVersion": 1.0, "name": "n"}).encode())
    expect_error(proc, 7, "cniVersion: must be a string")


def test_check_on_an_old_config_is_error_1(console_script: Path) -> None:
    proc = execute(console_script, cni_env("CHECK"), config("0.3.1"))
    expect_error(proc, 1, "config version 0.3.1 does not allow CHECK")


# Import weight ---------------------------------------------------------------------------

_MODULES_AFTER_VERSION = """
import json, sys
from delegates import entry
try:
    entry.{name}()
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


@pytest.mark.parametrize("name", ["static", "bridge", "macvlan", "ipvlan", "host_local"])
def test_version_via_delegates_entry_imports_only_the_standard_library(name: str) -> None:
    code = _MODULES_AFTER_VERSION.format(name=name, heavy=HEAVY_MODULES)
    proc = subprocess.run([sys.executable, "-c", code], input=b'{"cniVersion":"1.0.0"}',
                          env=subprocess_env(PODMAN_VERSION_ENV), capture_output=True, timeout=60, check=False)
    report = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert json.loads(proc.stdout)["supportedVersions"][-1] == "1.1.0"


def test_version_import_time_shows_no_heavy_module(console_script: Path) -> None:
    proc = execute(console_script, PODMAN_VERSION_ENV, b'{"cniVersion":"1.0.0"}', python_flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "cni.skel" in imported
    assert [m for m in imported if m.split(".")[0] in HEAVY_MODULES] == []


def test_importing_cni_and_its_skeleton_stays_light() -> None:
    code = ("import sys, cni, cni.skel, cni.version, cni.args, cni.errors; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}))")
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env({}), capture_output=True, timeout=60,
                          check=True)
    assert proc.stdout.decode().strip() == "[]"


# A throwaway plugin: behaviour past the generic checks --------------------------------------

FAKE_PLUGIN = '''
"""A throwaway CNI plugin for the tests: the shape of a real delegate, no side effects."""
import sys
from typing import Annotated

import msgspec

from cni import skel
from cni.config import VALID_ATTACHMENTS, NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import Interface, IPConfig, Result


class Conf(NetConf, frozen=True, kw_only=True):
    mtu: Annotated[int, msgspec.Meta(ge=68)] = 1500
    fail: str = ""
    record: str = ""


def cmd_add(args):
    conf = load_conf(Conf, args.stdin)
    if conf.fail == "stray":
        raise ValueError("kaput\\nTraceback (most recent call last): not really")
    if conf.fail == "busy":
        raise CniError(Code.TRY_AGAIN_LATER, "busy", "lock held")
    return Result(
        interfaces=[Interface(name=args.ifname, sandbox=args.netns, mtu=conf.mtu)],
        ips=[IPConfig(address="10.1.0.5/16", gateway="10.1.0.1", interface=0)],
    )


def cmd_del(args):
    load_conf(Conf, args.stdin)


def cmd_check(args):
    conf = load_conf(Conf, args.stdin)
    prev = conf.previous_result()
    if prev is None or prev.interfaces[0].name != args.ifname:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "prevResult: missing or not ours")


def cmd_status(args):
    if load_conf(Conf, args.stdin).fail == "status":
        raise CniError(Code.NOT_AVAILABLE, "no addresses left")


def cmd_gc(args):
    conf = load_conf(Conf, args.stdin)
    if conf.record:
        with open(conf.record, "w") as handle:
            import json
            json.dump(conf.given_valid_attachments(), handle)


sys.exit(skel.run_plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc,
                         about="fake"))
'''


@pytest.fixture
def fake_plugin(tmp_path: Path) -> Path:
    return write_script(tmp_path / "fake", FAKE_PLUGIN)


@pytest.mark.parametrize("cni_version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_prints_the_result_in_the_config_version(fake_plugin: Path, cni_version: str) -> None:
    proc = execute(fake_plugin, cni_env("ADD", CNI_IFNAME="net1"), config(cni_version, mtu=9000))
    assert proc.returncode == 0, proc.stderr
    iface: dict[str, Any] = {"name": "net1", "sandbox": "/var/run/netns/blue"}
    ip: dict[str, Any] = {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0}
    if cni_version == "1.1.0":
        iface["mtu"] = 9000
    if cni_version.startswith("0."):
        ip = {"version": "4", **ip}
    assert only_json(proc) == {"cniVersion": cni_version, "interfaces": [iface], "ips": [ip]}


def test_a_bad_key_in_the_plugin_config_is_error_7_naming_it(fake_plugin: Path) -> None:
    proc = execute(fake_plugin, cni_env("ADD"), config("1.0.0", mtu="jumbo"))
    err = expect_error(proc, 7, "mtu: ")
    assert err["cniVersion"] == "1.0.0"
    proc = execute(fake_plugin, cni_env("ADD"), config("1.0.0", mtu=20))
    expect_error(proc, 7, "mtu: ")


def test_a_stray_exception_is_error_999_in_one_line_with_the_traceback_on_stderr(fake_plugin: Path) -> None:
    proc = execute(fake_plugin, cni_env("ADD"), config(fail="stray"))
    err = expect_error(proc, 999, "internal error: ValueError: kaput")
    assert err["msg"] == "internal error: ValueError: kaput"
    assert b"Traceback" in proc.stderr


def test_a_cni_error_keeps_code_and_details(fake_plugin: Path) -> None:
    proc = execute(fake_plugin, cni_env("ADD"), config("0.4.0", fail="busy"))
    assert only_json(proc) == {"cniVersion": "0.4.0", "code": 11, "msg": "busy", "details": "lock held"}
    assert proc.returncode == 1


def test_check_reads_prev_result(fake_plugin: Path) -> None:
    added = execute(fake_plugin, cni_env("ADD"), config("1.0.0"))
    prev = {k: v for k, v in only_json(added).items() if k != "cniVersion"}
    proc = execute(fake_plugin, cni_env("CHECK"), config("1.0.0", prevResult=prev))
    assert (proc.returncode, proc.stdout) == (0, b"")
    proc = execute(fake_plugin, cni_env("CHECK", CNI_IFNAME="net9"), config("1.0.0", prevResult=prev))
    expect_error(proc, 7, "prevResult")


def test_del_without_netns_succeeds_silently(fake_plugin: Path) -> None:
    proc = execute(fake_plugin, cni_env("DEL", CNI_NETNS="-"), config("0.3.1"))
    assert (proc.returncode, proc.stdout) == (0, b"")


def test_status_reports_not_available_as_error_50(fake_plugin: Path) -> None:
    proc = execute(fake_plugin, {"CNI_COMMAND": "STATUS"}, config("1.1.0"))
    assert (proc.returncode, proc.stdout) == (0, b"")
    proc = execute(fake_plugin, {"CNI_COMMAND": "STATUS"}, config("1.1.0", fail="status"))
    expect_error(proc, 50, "no addresses left")


def test_gc_gets_the_valid_attachments(fake_plugin: Path, tmp_path: Path) -> None:
    record = tmp_path / "gc.json"
    valid = [{"containerID": "3f6940ab5ab4", "ifname": "eth0"}]
    stdin = config("1.1.0", record=str(record), **{"cni.dev/valid-attachments": valid})
    proc = execute(fake_plugin, {"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}, stdin)
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert json.loads(record.read_text()) == valid


def test_log_file_gets_the_failure(fake_plugin: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "plugin.log"
    proc = execute(fake_plugin, cni_env("ADD"), config(fail="busy", logFile=str(log_file), logToStderr=False))
    expect_error(proc, 11, "busy")
    assert "busy" in log_file.read_text()
    assert b"busy" not in proc.stderr
