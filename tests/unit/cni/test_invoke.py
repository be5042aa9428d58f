"""cni.invoke: running another plugin by exec (found by type in CNI_PATH, env + stdin, a
deadline that kills the process group) or in-process through a registry of built-ins, with
the same inputs giving the same outputs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni import invoke, skel
from cni.errors import CniError, Code

from .conftest import write_script

# A plugin that is both an executable and an importable module with a PLUGIN, as the
# built-in delegates are. Its answers echo the invocation so both paths can be compared.
TWIN_PLUGIN = '''
"""fake twin plugin"""
import json
import sys

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError
from cni.result import DNS, Interface, IPConfig, Result


def _conf(args):
    return load_conf(NetConf, args.stdin)


def cmd_add(args):
    conf = _conf(args)
    mode = json.loads(args.stdin).get("mode", "ok")
    if mode == "cni-error":
        raise CniError(107, "custom failure", "with details")
    if mode == "stray":
        raise RuntimeError("boom\\nsecond line")
    prev = conf.previous_result()
    return Result(
        interfaces=[*(prev.interfaces if prev else []), Interface(name=args.ifname, sandbox=args.netns)],
        ips=[IPConfig(address="10.1.0.5/16", interface=0)],
        dns=DNS(domain=args.container_id, search=list(args.path), options=[args.args]),
    )


def cmd_del(args):
    if _conf(args) and json.loads(args.stdin).get("mode") == "cni-error":
        raise CniError(5, "cannot release", "disk full")


def cmd_check(args):
    if _conf(args).previous_result() is None:
        raise CniError(7, "prevResult: required for CHECK")


PLUGIN = skel.Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, about="twin")

if __name__ == "__main__":
    sys.exit(skel.run(PLUGIN))
'''


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


@pytest.fixture
def twin(bin_dir: Path) -> skel.Plugin:
    """The twin plugin installed as `bin_dir/twin`, and its PLUGIN loaded in-process."""
    script = write_script(bin_dir / "twin", TWIN_PLUGIN)
    loader = importlib.machinery.SourceFileLoader("twin_plugin_under_test", str(script))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    plugin = module.PLUGIN
    assert isinstance(plugin, skel.Plugin)
    return plugin


def call_args(bin_dir: Path, command: str, **changes: Any) -> skel.CmdArgs:
    base = skel.CmdArgs(command=command, container_id="3f6940ab5ab4", netns="/var/run/netns/blue", ifname="eth0",
                        args="IgnoreUnknown=1;K8S_POD_NAME=web", path=(str(bin_dir / "missing"), str(bin_dir)))
    return base.replace(**changes)


def outcome(call: Callable[[], dict[str, Any] | None]) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except CniError as err:
        return ("error", err.code, err.msg, err.details)


def conf_for(cni_version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": cni_version, "name": "dbnet", "type": "twin", **extra}


# The two paths agree -----------------------------------------------------------------------

SCENARIOS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("add-1.1", "ADD", conf_for("1.1.0"), {}),
    ("add-0.4", "ADD", conf_for("0.4.0"), {}),
    ("add-0.3.0-with-prev", "ADD",
     conf_for("0.3.0", prevResult={"interfaces": [{"name": "cni0"}], "ips": [{"version": "4",
                                                                              "address": "10.9.0.1/24"}]}), {}),
    ("add-cni-error", "ADD", conf_for(mode="cni-error"), {}),
    ("add-stray", "ADD", conf_for(mode="stray"), {}),
    ("add-unsupported-version", "ADD", conf_for("0.2.0"), {}),
    ("add-bad-name", "ADD", {**conf_for(), "name": "no spaces"}, {}),
    ("add-bad-container-id", "ADD", conf_for(), {"container_id": "-bad"}),
    ("add-bad-ifname", "ADD", conf_for(), {"ifname": "eth0:1"}),
    ("add-no-netns", "ADD", conf_for(), {"netns": ""}),
    ("add-bad-cni-args", "ADD", conf_for(), {"args": "novalue"}),
    ("del", "DEL", conf_for(), {"netns": ""}),
    ("del-error", "DEL", conf_for(mode="cni-error"), {}),
    ("check", "CHECK", conf_for(prevResult={"ips": [{"address": "10.1.0.5/16"}]}), {}),
    ("check-without-prev", "CHECK", conf_for(), {}),
    ("check-too-old", "CHECK", conf_for("0.3.1"), {}),
    ("status", "STATUS", conf_for(), {}),
    ("gc", "GC", {**conf_for(), "cni.dev/valid-attachments": []}, {}),
    ("version", "VERSION", {"cniVersion": "0.4.0", "type": "twin"}, {}),
    ("version-garbage", "VERSION", {"type": "twin", "cniVersion": 42}, {"container_id": "", "netns": "dummy"}),
]


@pytest.mark.parametrize(("command", "conf", "changes"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_in_process_gives_the_same_answer_as_exec(
    twin: skel.Plugin, bin_dir: Path, command: str, conf: dict[str, Any], changes: dict[str, Any]
) -> None:
    args = call_args(bin_dir, command, **changes)
    by_exec = outcome(lambda: invoke.invoke(conf, args, timeout=30))
    in_process = outcome(lambda: invoke.invoke(conf, args, builtins={"twin": twin}.get))
    assert in_process == by_exec


def test_exec_and_builtin_results_carry_the_invocation(twin: skel.Plugin, bin_dir: Path) -> None:
    args = call_args(bin_dir, "ADD")
    expected = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/blue"}],
        "ips": [{"version": "4", "address": "10.1.0.5/16", "interface": 0}],
        "dns": {"domain": "3f6940ab5ab4", "search": list(args.path), "options": [args.args]},
    }
    assert invoke.invoke(conf_for("0.4.0"), args, timeout=30) == expected
    assert invoke.invoke(conf_for("0.4.0"), args, builtins={"twin": twin}.get) == expected


def test_a_stray_exception_in_process_is_the_skeleton_999(twin: skel.Plugin, bin_dir: Path) -> None:
    with pytest.raises(CniError) as caught:
        invoke.invoke(conf_for(mode="stray"), call_args(bin_dir, "ADD"), builtins={"twin": twin}.get)
    assert (caught.value.code, caught.value.msg) == (999, "internal error: RuntimeError: boom")


def test_a_registry_miss_falls_back_to_exec(twin: skel.Plugin, bin_dir: Path) -> None:
    def builtins(plugin_type: str) -> skel.Plugin | None:
        return None

    result = invoke.invoke(conf_for(), call_args(bin_dir, "ADD"), builtins=builtins, timeout=30)
    assert result is not None and result["cniVersion"] == "1.1.0"


# The exec path ---------------------------------------------------------------------------------


def test_exec_hands_the_plugin_its_env_and_stdin(bin_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "record.json"
    write_script(bin_dir / "recorder", f'''
        import json, os, sys
        stdin = sys.stdin.read()
        env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_") or k in ("EXTRA", "INHERITED")}}
        with open({str(record)!r}, "w") as handle:
            json.dump({{"env": env, "stdin": json.loads(stdin)}}, handle)
        print(json.dumps({{"cniVersion": "1.0.0"}}))
    ''')
    monkeypatch.setenv("CNI_STALE", "from-the-caller")
    monkeypatch.setenv("INHERITED", "yes")
    conf = {"cniVersion": "1.0.0", "name": "dbnet", "type": "recorder", "keyA": [1, 2]}
    args = call_args(bin_dir, "ADD")
    assert invoke.invoke(conf, args, extra_env={"EXTRA": "1", "CNI_IFNAME": "ignored"}) == {"cniVersion": "1.0.0"}
    seen = json.loads(record.read_text())
    assert seen["stdin"] == conf
    assert seen["env"] == {
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "3f6940ab5ab4", "CNI_NETNS": "/var/run/netns/blue",
        "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        "CNI_PATH": f"{bin_dir / 'missing'}:{bin_dir}", "EXTRA": "1", "INHERITED": "yes",
    }


def test_find_plugin_takes_the_first_executable_in_path(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "bridge").write_text("not executable")
    (first / "macvlan").mkdir()
    write_script(second / "bridge", "")
    write_script(second / "macvlan", "")
    assert invoke.find_plugin("bridge", [str(first), str(second)]) == str(second / "bridge")
    assert invoke.find_plugin("macvlan", (str(first), str(second))) == str(second / "macvlan")


def test_a_missing_binary_is_an_error_naming_the_type_and_path(bin_dir: Path) -> None:
    args = call_args(bin_dir, "ADD")
    with pytest.raises(CniError) as caught:
        invoke.invoke(conf_for(type="nothere"), args)
    err = caught.value
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "'nothere'" in err.msg
    assert str(bin_dir) in err.msg and str(bin_dir / "missing") in err.msg


@pytest.mark.parametrize("plugin_type", ["", ".", "..", "../bin/sh", "/bin/sh", "a/b", "nul\0"])
def test_a_type_that_is_not_a_file_name_is_error_7(bin_dir: Path, plugin_type: str) -> None:
    with pytest.raises(CniError) as caught:
        invoke.find_plugin(plugin_type, [str(bin_dir)])
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG


def test_an_error_json_keeps_the_plugin_code(bin_dir: Path) -> None:
    write_script(bin_dir / "failing", '''
        import json, sys
        print(json.dumps({"cniVersion": "1.0.0", "code": 107, "msg": "custom", "details": "why"}))
        sys.exit(1)
    ''')
    with pytest.raises(CniError) as caught:
        invoke.invoke(conf_for(type="failing"), call_args(bin_dir, "DEL"))
    assert (caught.value.code, caught.value.msg, caught.value.details) == (107, "custom", "why")


@pytest.mark.parametrize(
    ("body", "command", "code", "fragment"),
    [
        ("print('hello')", "ADD", Code.DECODING_FAILURE, "'odd' printed invalid JSON"),
        ("pass", "ADD", Code.DECODING_FAILURE, "'odd' ADD printed no result"),
        ("print('[1, 2]')", "VERSION", Code.DECODING_FAILURE, "'odd' VERSION printed no result"),
        ("import sys; print('oops'); sys.exit(1)", "ADD", Code.INTERNAL,
         "plugin 'odd' ADD failed with exit status 1 (its output is not an error JSON)"),
        ("import sys; sys.stderr.write('warming up\\nfatal: no bridge\\n'); sys.exit(3)", "DEL", Code.INTERNAL,
         "plugin 'odd' DEL failed with exit status 3: fatal: no bridge"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "DEL", Code.INTERNAL,
         "plugin 'odd' DEL failed with exit status -9"),
        ("import sys; print('{\"code\": 0, \"msg\": \"zero\"}'); sys.exit(1)", "DEL", Code.INTERNAL, "zero"),
    ],
)
def test_output_that_is_not_a_result_or_an_error_json(
    bin_dir: Path, body: str, command: str, code: int, fragment: str
) -> None:
    write_script(bin_dir / "odd", body + "\n")
    with pytest.raises(CniError) as caught:
        invoke.invoke(conf_for(type="odd"), call_args(bin_dir, command))
    assert caught.value.code == code
    assert caught.value.msg.startswith(fragment) or fragment in caught.value.msg, caught.value.msg


def test_del_with_no_output_is_success(bin_dir: Path) -> None:
    write_script(bin_dir / "quiet", "pass\n")
    assert invoke.invoke(conf_for(type="quiet"), call_args(bin_dir, "DEL")) is None


def test_an_unexecutable_binary_is_error_5(bin_dir: Path) -> None:
    broken = bin_dir / "broken"
    broken.write_bytes(b"\x7fELF garbage")
    broken.chmod(0o755)
    with pytest.raises(CniError) as caught:
        invoke.exec_plugin(str(broken), call_args(bin_dir, "ADD"))
    assert caught.value.code == Code.IO_FAILURE
    assert "'broken'" in caught.value.msg


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # killed; its new parent has not reaped it yet


def test_a_deadline_is_error_11_and_kills_the_process_group(bin_dir: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    write_script(bin_dir / "hang", f'''
        import json, os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open({str(pids)!r} + ".tmp", "w") as handle:
            json.dump([os.getpid(), child.pid], handle)
        os.rename({str(pids)!r} + ".tmp", {str(pids)!r})
        time.sleep(120)
    ''')
    started = time.monotonic()
    with pytest.raises(CniError) as caught:
        invoke.invoke(conf_for(type="hang"), call_args(bin_dir, "ADD"), timeout=3)
    assert time.monotonic() - started < 15
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert caught.value.msg == "plugin 'hang' ADD did not finish within 3.0s"
    plugin_pid, grandchild_pid = json.loads(pids.read_text())
    deadline = time.monotonic() + 10
    while not (_gone(plugin_pid) and _gone(grandchild_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(plugin_pid)
    assert _gone(grandchild_pid)


def test_the_builtin_path_needs_no_binary(twin: skel.Plugin, tmp_path: Path) -> None:
    args = skel.CmdArgs(command="ADD", container_id="c1", netns="/var/run/netns/x", ifname="net1",
                        path=(str(tmp_path / "empty"),))
    result = invoke.invoke(conf_for(), args, builtins={"twin": twin}.get)
    assert result is not None and result["interfaces"][0]["name"] == "net1"
    assert os.listdir(tmp_path) == ["bin"]
