"""The lanes' CNI bin dir, and what the runtimes handed the plugins there.

`write_bin_dir` fills a directory the runtime is pointed at:
- `netplex`: a bash wrapper that records each call (the CNI_* variables, stdin, stdout,
  exit code and times) in the calls directory and runs the real `netplex` executable in
  between, so a test sees exactly what containerd or podman passed and what netplex
  answered, and netplex itself runs unchanged;
- `loopback`: a link to the reference plugin (containerd's CRI sets up `lo` with it);
- `nprt-record`: a tiny CNI plugin for the end of a delegate chain, recording the config
  netplex handed it (runtimeConfig after netplex's normalisation) and passing prevResult on.

`read_calls` reads the records back, oldest first.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

LOOPBACK_CANDIDATES = ("/usr/lib/cni/loopback", "/opt/cni/bin/loopback")
RECORDER = "nprt-record"

_WRAPPER = """#!/bin/bash
# netplex, recorded: the runtime's CNI_* variables, stdin, stdout, exit code, times.
calls={calls}
start=$(date +%s%N)
log="$calls/$start-$$"
env | grep '^CNI_' > "$log.env"
cat > "$log.in"
{netplex} < "$log.in" > "$log.out" 2> "$log.err"
rc=$?
cat "$log.out"
echo "$rc $start $(date +%s%N)" > "$log.rc"
exit $rc
"""

_RECORDER = """#!{python} -I
# A CNI plugin that records its config and environment, then passes prevResult on.
import json, os, sys, time
raw = sys.stdin.read()
conf = json.loads(raw or "{{}}")
command = os.environ.get("CNI_COMMAND", "")
record = {{"env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}, "conf": conf}}
path = os.path.join({calls!r}, "record-%d-%d.json" % (time.time_ns(), os.getpid()))
with open(path, "w") as out:
    json.dump(record, out)
version = conf.get("cniVersion", "1.0.0")
if command == "VERSION":
    print(json.dumps({{"cniVersion": version, "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}))
elif command == "ADD":
    print(json.dumps(conf.get("prevResult") or {{"cniVersion": version}}))
"""


@dataclasses.dataclass(frozen=True)
class Call:
    """One recorded netplex invocation."""

    command: str
    env: dict[str, str]
    stdin: dict[str, Any] | None  # None when stdin was not a JSON object
    stdout: str
    stderr: str
    returncode: int
    started: float  # seconds since the epoch
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def container_id(self) -> str:
        return self.env.get("CNI_CONTAINERID", "")

    @property
    def answer(self) -> dict[str, Any] | None:
        """stdout as a JSON object (the result, VERSION answer or error), if it is one."""
        try:
            doc = json.loads(self.stdout)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


@dataclasses.dataclass(frozen=True)
class Record:
    """One call of the `nprt-record` plugin, as netplex (or a runtime) made it."""

    env: dict[str, str]
    conf: dict[str, Any]

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")


def loopback_plugin() -> str | None:
    """The reference loopback plugin's path (Debian's containernetworking-plugins)."""
    return next((path for path in LOOPBACK_CANDIDATES if os.access(path, os.X_OK)), None)


def netplex_path() -> Path:
    """The `netplex` executable of the interpreter running the tests (the project venv)."""
    return Path(sys.executable).parent / "netplex"


def write_bin_dir(bin_dir: Path, *, calls_dir: Path, netplex: Path | None = None) -> None:
    """The wrapper, the loopback link and the recorder in `bin_dir`; records go to `calls_dir`."""
    netplex = netplex or netplex_path()
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls_dir.mkdir(parents=True, exist_ok=True)
    wrapper = _WRAPPER.format(calls=shlex.quote(str(calls_dir)), netplex=shlex.quote(str(netplex)))
    _executable(bin_dir / "netplex", wrapper)
    _executable(bin_dir / RECORDER, _RECORDER.format(python=sys.executable, calls=str(calls_dir)))
    loopback = loopback_plugin()
    if loopback is None:
        raise FileNotFoundError("the loopback CNI plugin is missing: install Debian's containernetworking-plugins")
    (bin_dir / "loopback").symlink_to(loopback)


def read_calls(calls_dir: Path) -> list[Call]:
    """Every finished netplex call recorded in `calls_dir`, oldest first."""
    calls = []
    for rc_file in calls_dir.glob("*.rc"):
        base = rc_file.with_suffix("")
        code, started, ended = rc_file.read_text().split()
        env = dict(line.split("=", 1) for line in base.with_suffix(".env").read_text().splitlines() if "=" in line)
        raw = base.with_suffix(".in").read_bytes()
        try:
            stdin = json.loads(raw)
        except ValueError:
            stdin = None
        calls.append(Call(
            command=env.get("CNI_COMMAND", ""),
            env=env,
            stdin=stdin if isinstance(stdin, dict) else None,
            stdout=base.with_suffix(".out").read_text(),
            stderr=base.with_suffix(".err").read_text(),
            returncode=int(code),
            started=int(started) / 1e9,
            ended=int(ended) / 1e9,
        ))
    return sorted(calls, key=lambda call: call.started)


def read_records(calls_dir: Path) -> list[Record]:
    """Every call of the recorder plugin, oldest first."""
    records = []
    for path in sorted(calls_dir.glob("record-*.json"), key=lambda p: int(p.name.split("-")[1])):
        doc = json.loads(path.read_text())
        records.append(Record(env=doc["env"], conf=doc["conf"]))
    return records


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
