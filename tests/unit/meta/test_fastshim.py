"""The shim's fast path: the json-free peek (meta.rawjson) agrees with `json` or gives
up, VERSION's constant answer is the skeleton's, errors are valid CNI error JSON, the
/cni/raw body round-trips (meta.rawproto), and the fast path imports nothing but the
interpreter's own modules, also under `python -I -S`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni import skel, version
from meta import fastshim, rawjson, rawproto

KEYS = ("daemonSocket", "cniVersion", "addTimeout")
REPO = Path(__file__).resolve().parents[3]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=20),
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*KEYS, "name", "plugins", "a\\\"b"]), values, max_size=6),
       st.sampled_from([None, 1, 2]))
def test_the_peek_agrees_with_json_or_gives_up(doc: dict[str, Any], indent: int | None) -> None:
    raw = json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    peeked = rawjson.peek(raw, KEYS)
    if peeked is None:
        return  # the caller parses with json
    for key in KEYS:
        value = doc.get(key)
        if key in doc and (value is None or isinstance(value, (bool, int, float, str))):
            assert peeked.get(key, "missing") == value
        else:
            assert key not in peeked


@pytest.mark.parametrize("raw", [b"", b"[]", b'"x"', b'{"a": 1', b'{"a": "b}', b'{"daemonSocket": "/s"} trailing',
                                 b'{"daemonSocket": /s}', b'{"cniVersion": "1\\u0030"}'])
def test_the_peek_gives_up_on_what_is_not_a_plain_object(raw: bytes) -> None:
    assert rawjson.peek(raw, KEYS) is None


def test_a_nested_daemon_socket_is_not_the_configs() -> None:
    raw = json.dumps({"plugins": [{"daemonSocket": "/x"}], "args": {"daemonSocket": "/y"}, "cniVersion": "1.0.0"})
    assert rawjson.peek(raw.encode(), KEYS) == {"cniVersion": "1.0.0"}


def test_depth_counts_nesting_and_skips_strings() -> None:
    assert rawjson.depth_of(b'{"a": "[[[[", "b": [[{}]]}') == 4
    assert rawjson.depth_of(b"[" * 100_000) == 100_000


@pytest.mark.parametrize("requested", ["0.3.1", "1.0.0", "1.1.0", "9.9.9", None, 5])
def test_version_is_the_skeletons_answer(requested: Any) -> None:
    stdin = json.dumps({"cniVersion": requested}).encode()
    out = io.StringIO()
    plugin = skel.Plugin(add=lambda args: {}, delete=lambda args: None)
    assert skel.run(plugin, environ={"CNI_COMMAND": "VERSION"}, stdin=io.BytesIO(stdin), stdout=out) == 0
    assert json.loads(fastshim.version_answer(requested)) == json.loads(out.getvalue())
    assert (fastshim.SUPPORTED_VERSIONS, fastshim.CURRENT_VERSION) == (version.SUPPORTED_VERSIONS,
                                                                         version.CURRENT_VERSION)


def test_errors_are_cni_error_documents() -> None:
    doc = json.loads(fastshim.error("0.4.0", 11, 'daemon at "/run/x\\y" said \u00e9\n'))
    assert doc == {"cniVersion": "0.4.0", "code": 11, "msg": 'daemon at "/run/x\\y" said \u00e9\n'}
    assert json.loads(fastshim.error(7, 6, "x"))["cniVersion"] == fastshim.FALLBACK_VERSION


def test_the_raw_body_round_trips_and_the_daemon_answers_bytes() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=a;X=b=c", "HOME": "/root"}
    stdin = b'{"cniVersion": "1.0.0", "name": "n"}'
    assert rawproto.parse_body(fastshim.body_of(env, stdin)) == (
        {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=a;X=b=c"}, stdin)
    seen: list[Any] = []

    def handle_cni(request: Any) -> tuple[int, Any]:
        seen.append(request)
        return 0, {"cniVersion": "1.0.0"}

    assert rawproto.handle(fastshim.body_of(env, stdin), handle_cni) == (0, b'{"cniVersion": "1.0.0"}\n')
    assert seen == [{"env": {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=a;X=b=c"}, "config": json.loads(stdin)}]
    code, out = rawproto.handle(fastshim.body_of(env, b'{"cniVersion": "0.4.0", "na'), handle_cni) or (0, b"")
    assert code == 1 and json.loads(out)["code"] == 6 and len(seen) == 1
    assert rawproto.handle(b"no terminator", handle_cni) is None


def _run(code: str, stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code], input=stdin,
                          env=env, capture_output=True, timeout=60, check=False, cwd=REPO)


def test_version_answers_under_python_minus_i_minus_s_importing_nothing_more() -> None:
    code = f"import sys; sys.path[:0] = [{str(REPO)!r}]; from meta.main import main; main()"
    proc = _run(code, b'{"cniVersion": "0.4.0"}', {"CNI_COMMAND": "VERSION"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == version.version_info("0.4.0")
    imported = {line.rsplit(b"|", 1)[1].strip().decode() for line in proc.stderr.splitlines() if b"|" in line}
    ours = {name for name in imported if name.split(".")[0] in ("meta", "cni", "delegates")}
    assert ours == {"meta", "meta.main", "meta.fastshim", "meta.rawjson"}
    assert not imported & {"json", "typing", "socket", "logging", "dataclasses", "re"}


def test_a_config_nested_absurdly_deep_is_error_6_without_the_daemon(tmp_path: Path) -> None:
    code = f"import sys; sys.path[:0] = [{str(REPO)!r}]; from meta.main import main; main()"
    raw = b'{"cniVersion": "1.0.0", "daemonSocket": "' + str(tmp_path / "none.sock").encode() + b'", "x": '
    raw += b"[" * 10_000 + b"]" * 10_000 + b"}"
    proc = _run(code, raw, {"CNI_COMMAND": "ADD", "PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert (doc["code"], doc["cniVersion"]) == (6, "1.0.0") and "deeper than 64" in doc["msg"]
