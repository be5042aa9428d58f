"""cni.skel in-process: env + stdin -> one command -> result or error JSON on stdout, for
all six commands, with the spec's validation of every variable and of the config."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni import skel
from cni.errors import CniError, Code, MultiError
from cni.result import Result

from .conftest import cni_env, config, run_skel

SPEC_COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
ALL_VARIABLES = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")


@dataclasses.dataclass
class Recorder:
    """A fake plugin: records each call, returns a fixed result, raises when told to."""

    calls: list[tuple[str, skel.CmdArgs]] = dataclasses.field(default_factory=list)
    add_result: Any = None
    raise_: BaseException | None = None

    def verb(self, name: str) -> Any:
        def call(args: skel.CmdArgs) -> Any:
            self.calls.append((name, args))
            if self.raise_ is not None:
                raise self.raise_
            return self.add_result if name == "ADD" else None

        return call

    def plugin(self, *, with_optional: bool = True) -> skel.Plugin:
        return skel.Plugin(
            add=self.verb("ADD"),
            delete=self.verb("DEL"),
            check=self.verb("CHECK") if with_optional else None,
            status=self.verb("STATUS") if with_optional else None,
            gc=self.verb("GC") if with_optional else None,
            about="fake",
        )


def add_result() -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}]}


def error_of(out: str) -> dict[str, Any]:
    lines = out.splitlines()
    assert len(lines) == 1, out
    doc: dict[str, Any] = json.loads(lines[0])
    assert set(doc) <= {"cniVersion", "code", "msg", "details"}
    return doc


# VERSION ---------------------------------------------------------------------------------


def test_version_answers_supported_versions() -> None:
    code, out = run_skel(Recorder().plugin(), {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert code == 0
    assert json.loads(out) == {"cniVersion": "1.0.0",
                               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


@pytest.mark.parametrize(
    "stdin",
    [b"", b"garbage", b"[" * 100_000, b'{"cniVersion": 1}', b'{"cniVersion": "0.2.0"}', b"\xff\xfe\x00",
     b'{"cniVersion": "1.1.0", "name": "bad name!"}'],
)
def test_version_never_fails_on_podman_dummy_values(stdin: bytes) -> None:
    environ = {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "", "CNI_NETNS": "dummy", "CNI_IFNAME": "dummy",
               "CNI_PATH": "dummy", "CNI_ARGS": "no pairs here"}
    code, out = run_skel(Recorder().plugin(), environ, stdin)
    assert code == 0
    assert json.loads(out)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_version_never_loads_the_plugin() -> None:
    def loader() -> skel.Plugin:
        raise AssertionError("VERSION loaded the plugin")

    code, out = run_skel(loader, {"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0
    assert json.loads(out)["cniVersion"] == "1.1.0"


# Environment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "variable"),
    [(c, v) for c in ("ADD", "CHECK") for v in ALL_VARIABLES]
    + [("DEL", v) for v in ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH")],
)
def test_a_missing_required_variable_is_error_4_naming_it(command: str, variable: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env(command, **{variable: "-"}), config())
    assert code == 1
    err = error_of(out)
    assert (err["code"], err["cniVersion"]) == (4, "1.1.0")
    assert err["msg"] == f"{variable} is required for {command}"
    assert recorder.calls == []


def test_every_missing_variable_is_named() -> None:
    code, out = run_skel(Recorder().plugin(), {"CNI_COMMAND": "ADD"}, config())
    assert code == 1
    assert error_of(out)["msg"] == "CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH are required for ADD"


@pytest.mark.parametrize("command", ["", "add", "GET", "INIT", "ADD "])
def test_a_bad_command_is_error_4_naming_cni_command(command: str) -> None:
    environ = cni_env("ADD", CNI_COMMAND=command) if command else cni_env("ADD", CNI_COMMAND="-")
    code, out = run_skel(Recorder().plugin(), environ, config())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert err["msg"].startswith("CNI_COMMAND")


def test_del_needs_no_netns() -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("DEL", CNI_NETNS="-"), config())
    assert (code, out) == (0, "")
    assert recorder.calls[0][1].netns == ""


@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_and_gc_need_no_attachment_variables(command: str) -> None:
    recorder = Recorder()
    environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": "", "CNI_IFNAME": "", "CNI_ARGS": "garbage"}
    code, out = run_skel(recorder.plugin(), environ, config())
    assert (code, out) == (0, "")
    assert [name for name, _ in recorder.calls] == [command]


@pytest.mark.parametrize(
    "container_id", ["a", "0", "3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755", "pod_1.2-x",
                     "Z" * 256],
)
def test_valid_container_ids(container_id: str) -> None:
    code, _ = run_skel(Recorder().plugin(), cni_env("DEL", CNI_CONTAINERID=container_id), config())
    assert code == 0


@pytest.mark.parametrize(
    "container_id", ["-abc", "_abc", ".abc", "a/b", "../etc", "a b", "a:b", "abc\n", "a\tb", "ä", "a" * 257, "a;b"],
)
def test_container_id_charset_is_enforced_with_error_4(container_id: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("ADD", CNI_CONTAINERID=container_id), config())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert err["msg"].startswith("CNI_CONTAINERID")
    assert recorder.calls == []


@pytest.mark.parametrize("ifname", ["eth0", "net1", "a" * 15, "veth.1-x_y", "é" * 7])
def test_valid_ifnames(ifname: str) -> None:
    code, _ = run_skel(Recorder().plugin(), cni_env("DEL", CNI_IFNAME=ifname), config())
    assert code == 0


@pytest.mark.parametrize("ifname", [".", "..", "a" * 16, "é" * 8, "eth/0", "eth:0", "eth 0", "eth\t0", "eth0\n",
                                    "eth\u00a00"])
def test_bad_ifnames_are_error_4_naming_cni_ifname(ifname: str) -> None:
    code, out = run_skel(Recorder().plugin(), cni_env("ADD", CNI_IFNAME=ifname), config())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert err["msg"].startswith("CNI_IFNAME")


def test_a_relative_netns_is_error_4() -> None:
    code, out = run_skel(Recorder().plugin(), cni_env("ADD", CNI_NETNS="run/netns/x"), config())
    assert code == 1
    assert error_of(out)["msg"].startswith("CNI_NETNS")


def test_bad_cni_args_are_error_4_before_the_plugin_runs() -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("ADD", CNI_ARGS="K8S_POD_NAME"), config())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert err["msg"].startswith("CNI_ARGS")
    assert recorder.calls == []


def test_cmd_args_carry_the_invocation() -> None:
    recorder = Recorder(add_result=add_result())
    stdin = config()
    run_skel(recorder.plugin(), cni_env("ADD", CNI_PATH="/opt/cni/bin:/usr/lib/cni::"), stdin)
    _, args = recorder.calls[0]
    assert args == skel.CmdArgs(command="ADD", container_id="3f6940ab5ab4", netns="/var/run/netns/blue",
                                ifname="eth0", args="IgnoreUnknown=1;K8S_POD_NAME=web",
                                path=("/opt/cni/bin", "/usr/lib/cni"), stdin=stdin)
    assert args.cni_args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "web"}
    assert args.env()["CNI_PATH"] == "/opt/cni/bin:/usr/lib/cni"
    assert args.replace(ifname="net1").ifname == "net1"


# Config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [b"", b"{", b"not json", b"\xff\xfe", b"[" * 100_000, b"1e999999" * 2])
def test_bad_json_is_error_6(stdin: bytes) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), stdin)
    assert code == 1
    assert error_of(out)["code"] == 6
    assert recorder.calls == []


@pytest.mark.parametrize("stdin", [b"[]", b"42", b'"text"', b"null"])
def test_json_that_is_not_an_object_is_error_6(stdin: bytes) -> None:
    code, out = run_skel(Recorder().plugin(), cni_env("DEL"), stdin)
    assert code == 1
    assert error_of(out) == {"cniVersion": "1.1.0", "code": 6, "msg": "config is not a JSON object"}


def test_oversized_stdin_is_error_6() -> None:
    code, out = run_skel(Recorder().plugin(), cni_env("ADD"), b" " * (skel.MAX_STDIN_BYTES + 10))
    assert code == 1
    assert error_of(out)["code"] == 6


@pytest.mark.parametrize("requested", ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "banana"])
def test_an_unsupported_version_is_error_1(requested: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), config(requested))
    assert code == 1
    err = error_of(out)
    assert err["code"] == 1
    assert err["cniVersion"] == "1.1.0"
    assert recorder.calls == []


def test_a_config_without_a_version_is_error_1() -> None:
    code, out = run_skel(Recorder().plugin(), cni_env("ADD"), b'{"name": "dbnet", "type": "fake"}')
    assert code == 1
    assert error_of(out)["code"] == 1


def test_cni_versions_picks_the_highest_supported() -> None:
    recorder = Recorder(add_result=add_result())
    stdin = config("1.0.0", cniVersions=["0.4.0", "1.1.0", "3.0.0"])
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), stdin)
    assert code == 0
    assert json.loads(out)["cniVersion"] == "1.1.0"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"cniVersion": "1.0.0", "type": "fake"}, "name: missing network name"),
        ({"cniVersion": "1.0.0", "name": "", "type": "fake"}, "name: missing network name"),
        ({"cniVersion": "1.0.0", "name": "db net", "type": "fake"}, "name: invalid characters"),
        ({"cniVersion": "1.0.0", "name": "dbnet\n", "type": "fake"}, "name: invalid characters"),
        ({"cniVersion": "1.0.0", "name": 7, "type": "fake"}, "name: missing network name"),
        ({"cniVersion": 1, "name": "dbnet"}, "cniVersion: must be a string"),
        ({"cniVersion": "1.0.0", "cniVersions": "1.1.0", "name": "dbnet"}, "cniVersions: must be a list of strings"),
        ({"cniVersion": "1.0.0", "cniVersions": [1], "name": "dbnet"}, "cniVersions: must be a list of strings"),
    ],
)
def test_an_invalid_config_is_error_7_naming_the_key(doc: dict[str, Any], message: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), json.dumps(doc).encode())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 7
    assert err["msg"].startswith(message)
    assert recorder.calls == []


# Commands --------------------------------------------------------------------------------


@pytest.mark.parametrize("cni_version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_prints_the_result_in_the_config_version(cni_version: str) -> None:
    recorder = Recorder(add_result=Result.from_wire(add_result()))
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), config(cni_version))
    assert code == 0
    doc = json.loads(out)
    assert doc["cniVersion"] == cni_version
    assert ("version" in doc["ips"][0]) is cni_version.startswith("0.")


def test_a_plain_mapping_result_gets_the_config_version() -> None:
    recorder = Recorder(add_result={"ips": [{"address": "10.1.0.5/16"}]})
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), config("1.0.0"))
    assert code == 0
    assert json.loads(out) == {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}]}


def test_a_mapping_result_in_another_version_is_converted() -> None:
    recorder = Recorder(add_result=add_result())  # says 1.1.0
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), config("0.4.0"))
    assert code == 0
    assert json.loads(out) == {"cniVersion": "0.4.0",
                               "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1"}]}


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_other_commands_print_nothing_on_success(command: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env(command), config("1.1.0"))
    assert (code, out) == (0, "")
    assert [name for name, _ in recorder.calls] == [command]


@pytest.mark.parametrize(("command", "too_old"), [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "1.0.0"),
                                                  ("CHECK", "0.3.0"), ("GC", "0.4.0")])
def test_a_command_newer_than_the_config_version_is_error_1(command: str, too_old: str) -> None:
    recorder = Recorder()
    code, out = run_skel(recorder.plugin(), cni_env(command), config(too_old))
    assert code == 1
    err = error_of(out)
    assert (err["code"], err["cniVersion"]) == (1, too_old)
    assert command in err["msg"]
    assert recorder.calls == []


def test_missing_status_and_gc_hooks_succeed_and_missing_check_fails() -> None:
    plugin = Recorder().plugin(with_optional=False)
    for command in ("STATUS", "GC"):
        assert run_skel(plugin, cni_env(command), config()) == (0, "")
    code, out = run_skel(plugin, cni_env("CHECK"), config())
    assert code == 1
    assert error_of(out)["msg"] == "fake: CHECK is not implemented"


# Errors ----------------------------------------------------------------------------------


def test_a_cni_error_keeps_its_code_message_and_details() -> None:
    recorder = Recorder(raise_=CniError(Code.TRY_AGAIN_LATER, "bridge busy", "lock held by 42"))
    code, out = run_skel(recorder.plugin(), cni_env("ADD"), config("0.4.0"))
    assert code == 1
    assert error_of(out) == {"cniVersion": "0.4.0", "code": 11, "msg": "bridge busy", "details": "lock held by 42"}


def test_a_multi_error_prints_as_one_error() -> None:
    errors = [CniError(Code.IO_FAILURE, "one"), CniError(Code.INTERNAL, "two")]
    code, out = run_skel(Recorder(raise_=MultiError(errors)).plugin(), cni_env("DEL"), config())
    assert code == 1
    assert error_of(out) == {"cniVersion": "1.1.0", "code": 5, "msg": "one; two"}


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("bad\nthing\nTraceback (most recent call last):"), "internal error: ValueError: bad"),
        (KeyError("mtu"), "internal error: KeyError: 'mtu'"),
        (RuntimeError(), "internal error: RuntimeError"),
        (OSError(13, "Permission denied"), "internal error: PermissionError: [Errno 13] Permission denied"),
        (RecursionError("deep"), "internal error: RecursionError: deep"),
    ],
)
def test_a_stray_exception_is_error_999_in_one_line(exc: Exception, message: str) -> None:
    code, out = run_skel(Recorder(raise_=exc).plugin(), cni_env("ADD"), config())
    assert code == 1
    assert error_of(out) == {"cniVersion": "1.1.0", "code": 999, "msg": message}
    assert "Traceback" not in out


def test_a_long_stray_message_is_cut() -> None:
    code, out = run_skel(Recorder(raise_=ValueError("x" * 5000)).plugin(), cni_env("ADD"), config())
    assert code == 1
    assert len(error_of(out)["msg"]) == skel.MAX_ERROR_MESSAGE_LENGTH


def test_a_failing_loader_is_error_999_after_the_generic_checks() -> None:
    def loader() -> skel.Plugin:
        raise ModuleNotFoundError("No module named 'delegates.nothing'")

    code, out = run_skel(loader, cni_env("ADD"), b"{")
    assert error_of(out)["code"] == 6  # the config is judged before the plugin is loaded
    code, out = run_skel(loader, cni_env("ADD"), config())
    assert code == 1
    assert error_of(out) == {"cniVersion": "1.1.0", "code": 999,
                             "msg": "internal error: ModuleNotFoundError: No module named 'delegates.nothing'"}


def test_surrogate_escaped_environment_values_print_as_json() -> None:
    """os.environ holds undecodable bytes as lone surrogates; the error JSON still prints."""
    code, out = run_skel(Recorder().plugin(), cni_env("ADD", CNI_CONTAINERID="abc\udcff"), config())
    assert code == 1
    assert "\\udcff" in out
    out.encode("ascii")
    assert error_of(out)["code"] == 4


def test_unreadable_stdin_is_error_5() -> None:
    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    import io

    out = io.StringIO()
    code = skel.run(Recorder().plugin(), environ=cni_env("ADD"), stdin=Broken(), stdout=out)  # type: ignore[arg-type]
    assert code == 1
    assert error_of(out.getvalue())["code"] == 5


def test_run_plugin_builds_the_plugin_from_verbs() -> None:
    import io

    out = io.StringIO()
    code = skel.run_plugin(add=lambda args: add_result(), delete=lambda args: None, about="x",
                           environ=cni_env("ADD"), stdin=io.BytesIO(config("1.1.0")), stdout=out)
    assert code == 0
    assert json.loads(out.getvalue()) == add_result()


def test_run_lazy_refuses_a_module_attribute_that_is_not_a_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(config())))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr("os.environ", cni_env("ADD"))
    assert skel.run_lazy("json", "dumps") == 1
    assert error_of(out.getvalue())["msg"] == "internal error: TypeError: json.dumps is not a cni.skel.Plugin"


# Fuzz ------------------------------------------------------------------------------------


def check_output(code: int, out: str, command: str) -> None:
    """Exit 0 with a result (ADD, VERSION) or nothing; or exit 1 with one error JSON line."""
    assert "Traceback" not in out
    if code == 0:
        if command in ("ADD", "VERSION"):
            assert isinstance(json.loads(out), dict)
        else:
            assert out == ""
    else:
        assert code == 1
        err = error_of(out)
        assert isinstance(err["code"], int) and err["code"] > 0
        assert isinstance(err["msg"], str) and "\n" not in err["msg"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(stdin=st.one_of(st.binary(max_size=300),
                       st.builds(lambda d: json.dumps(d).encode(),
                                 st.dictionaries(st.sampled_from(["cniVersion", "cniVersions", "name", "type",
                                                                  "prevResult", "x"]),
                                                 st.one_of(st.none(), st.booleans(), st.integers(),
                                                           st.sampled_from(["1.1.0", "0.3.1", "0.2.0", "dbnet"]),
                                                           st.lists(st.sampled_from(["1.0.0", "9.9.9"])),
                                                           st.text(max_size=10))))),
       command=st.sampled_from(SPEC_COMMANDS))
def test_arbitrary_stdin_never_gives_a_traceback_or_non_json(stdin: bytes, command: str) -> None:
    code, out = run_skel(Recorder(add_result=add_result()).plugin(), cni_env(command), stdin)
    check_output(code, out, command)


@settings(max_examples=300, deadline=None)
@given(cni_args=st.text(max_size=100), command=st.sampled_from(SPEC_COMMANDS),
       container_id=st.text(max_size=20), ifname=st.text(max_size=20))
def test_arbitrary_environment_never_gives_a_traceback_or_non_json(
    cni_args: str, command: str, container_id: str, ifname: str
) -> None:
    environ = cni_env(command, CNI_ARGS=cni_args, CNI_CONTAINERID=container_id, CNI_IFNAME=ifname)
    code, out = run_skel(Recorder(add_result=add_result()).plugin(), environ, config())
    check_output(code, out, command)


@settings(max_examples=100, deadline=None)
@given(exc_text=st.text(max_size=200))
def test_any_stray_message_stays_one_line(exc_text: str) -> None:
    code, out = run_skel(Recorder(raise_=RuntimeError(exc_text)).plugin(), cni_env("DEL"), config())
    check_output(code, out, "DEL")
    assert error_of(out)["code"] == 999


@pytest.mark.parametrize(("command", "too_old"), [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "0.4.0")])
def test_a_too_old_config_is_refused_before_the_plugin_loads(command: str, too_old: str) -> None:
    def loader() -> skel.Plugin:
        raise AssertionError("the plugin was loaded")

    code, out = run_skel(loader, cni_env(command), config(too_old))
    assert code == 1
    assert error_of(out)["code"] == 1
