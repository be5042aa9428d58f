"""The node's own record of the addresses it handed out: one file per address, durable
like host-local's, under `<dataDir>/<node>/<pool>/`.

A node allocates only inside blocks it owns in the API, so its records alone decide
which of those addresses are free: no API write per address. A record is a small JSON
document (container ID, ifname, the pod's namespace/name/uid, the IPAMClaim that holds the
address, when it was made, and `foreign` for a claim's address from another node's block
that this node only uses). It appears atomically and exclusively: written to a temporary
file, fsync'ed, hard-linked to its address's name (which fails if the address is taken).
`lock` is flock'ed around every read-modify-write, across processes and threads.

The node's name is part of the path so that several "nodes" may share one filesystem
(tests); DEL finds an attachment's records under any node (container IDs are unique).
No API access and no CNI logic here."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from cni import store as files
from cni.result import IPAddress

LOCK_NAME = "lock"
_TMP_PREFIX = ".tmp-"  # also cni.store's, for replace()


@dataclasses.dataclass(frozen=True)
class Record:
    ip: IPAddress
    network: str = ""  # the CNI network name of the attachment (GC is per network)
    container_id: str = ""  # "" for a claim's address no attachment uses now
    ifname: str = ""
    pod: str = ""  # namespace/name
    uid: str = ""
    claim: str = ""  # namespace/name of the IPAMClaim holding the address
    claim_uid: str = ""
    created: float = 0.0
    foreign: bool = False  # in another node's block (a claim's address followed its pod here)

    def to_json(self) -> bytes:
        doc = dataclasses.asdict(self)
        doc["ip"] = str(self.ip)
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, ip: IPAddress, data: bytes) -> Record:
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        fields = {field.name for field in dataclasses.fields(cls)} - {"ip"}
        kept: dict[str, Any] = {key: value for key, value in doc.items() if key in fields}
        try:
            return cls(ip=ip, **kept)
        except TypeError:
            return cls(ip=ip)

    def attached(self, container_id: str, ifname: str) -> bool:
        return bool(self.container_id) and self.container_id == container_id and self.ifname == ifname


class Records:
    """The records of one pool on one node."""

    def __init__(self, data_dir: str, node: str, pool: str) -> None:
        self.directory = os.path.join(data_dir, _safe(node), pool)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        with files.locked(os.path.join(self.directory, LOCK_NAME)):
            yield

    def all(self) -> list[Record]:
        found: list[Record] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in names:
            ip = _address(name)
            if ip is None:
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    found.append(Record.from_json(ip, handle.read(8192)))
            except FileNotFoundError:
                continue
        return sorted(found, key=lambda r: (r.ip.version, int(r.ip)))

    def taken(self) -> set[IPAddress]:
        try:
            return {ip for ip in map(_address, os.listdir(self.directory)) if ip is not None}
        except FileNotFoundError:
            return set()

    def reserve(self, record: Record) -> bool:
        """Write `record` if its address is free; False when it is taken."""
        record = dataclasses.replace(record, created=record.created or time.time())
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(record.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, self._path(record.ip))
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True

    def replace(self, record: Record) -> None:
        """Overwrite the record of `record.ip` (a claim's address changing hands)."""
        files.atomic_write(self._path(record.ip), record.to_json(), mode=0o644, sync=files.Sync.FILE)

    def release(self, ip: IPAddress) -> bool:
        return files.remove(self._path(ip))

    def has_temporaries(self) -> bool:
        """Whether a half-written record lies here (cheap: one listdir, no lock)."""
        try:
            return any(name.startswith(_TMP_PREFIX) for name in os.listdir(self.directory))
        except FileNotFoundError:
            return False

    def remove_stale_temporaries(self) -> int:
        """Delete half-written records a killed process left (lock held: none is live)."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.directory):
                if name.startswith(_TMP_PREFIX) and files.remove(os.path.join(self.directory, name)):
                    removed += 1
        return removed

    def _path(self, ip: IPAddress) -> str:
        return os.path.join(self.directory, str(ip))


def pools_of(data_dir: str, node: str | None = None) -> Iterator[tuple[str, str]]:
    """(node directory name, pool) of every record directory, for one node or all."""
    nodes = [_safe(node)] if node is not None else _listdir(data_dir)
    for node_dir in nodes:
        for pool in _listdir(os.path.join(data_dir, node_dir)):
            yield node_dir, pool


def _listdir(path: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _safe(node: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in node).lstrip(".")
    return cleaned or "_"


def _address(name: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    return ip if str(ip) == name else None
