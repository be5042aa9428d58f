"""host-local's on-disk store, byte-compatible with the reference plugin's `disk` backend,
so netplex and containernetworking's host-local can share (and hand over) a data dir.

Layout of `<dataDir>/<network>/`:
- `<ip>` (e.g. `10.1.2.3`, `fd00::5`): one file per reserved address, holding
  `containerID\\r\\nifname`; files written before CNI 0.7 hold the container ID alone
  (a "legacy" reservation, matching every ifname of that container).
- `last_reserved_ip.<range set index>`: the last address handed out from that range set.
- `lock`: flock'ed for the whole of every read-modify-write (the reference locks the same
  file the same way, so the two plugins exclude each other).

A reservation appears atomically with its content: it is written to a temporary file,
then hard-linked to its address name, which fails if the address is taken. Nothing is
fsync'ed (as the reference; the durability model is in `cni.store` and the README): kill
-9 leaves the old or the new state, and a power loss is a node reboot that ends every
pod, after which a reservation that lost its link or its content (an empty file) belongs
to no valid attachment and the runtime's GC frees it. The last-reserved hint, lost or
empty, makes allocation start over from the start of its range. Methods other than
`locked()` expect the caller to hold the lock. No CNI logic here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator

import msgspec

from cni import faultpoint
from cni import store as files
from cni.result import IPAddress

__all__ = ["DEFAULT_DATA_DIR", "LAST_RESERVED_PREFIX", "LINE_BREAK", "LOCK_NAME", "Reservation", "Store"]

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
LINE_BREAK = "\r\n"
_TMP_PREFIX = ".tmp-reserve-"


class Reservation(msgspec.Struct, frozen=True):
    """One reserved address and who holds it; `ifname` is None for a legacy file."""

    ip: IPAddress
    container_id: str
    ifname: str | None

    def held_by(self, container_id: str, ifname: str) -> bool:
        """Exactly this attachment, or (legacy file) any interface of this container."""
        if self.container_id != container_id.strip():
            return False
        return self.ifname is None or self.ifname == ifname


class Store:
    """The reservations of one network under one data dir."""

    def __init__(self, data_dir: str, network: str) -> None:
        self.directory = os.path.join(data_dir or DEFAULT_DATA_DIR, network)

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the network's flock (creating the directory as the reference does, 0755)."""
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        with files.locked(os.path.join(self.directory, LOCK_NAME)):
            yield

    def reservations(self) -> list[Reservation]:
        """Every reservation in the directory, in address order; unreadable files are skipped."""
        found: list[Reservation] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in names:
            ip = _address_of(name)
            if ip is None:
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    content = handle.read(4096).decode(errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                continue
            found.append(_parse(ip, content))
        return sorted(found, key=lambda r: (r.ip.version, int(r.ip)))

    def reserve(self, ip: IPAddress, *, container_id: str, ifname: str, range_set: int) -> bool:
        """Claim `ip` for the attachment; False if it is taken. Records it as the range set's
        last reserved address."""
        data = (container_id.strip() + LINE_BREAK + ifname).encode()
        fd, tmp = files.create_temp(self.directory, _TMP_PREFIX, ".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            faultpoint.reached("hostlocal.before-link")
            try:
                os.link(tmp, self._path(ip))
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        faultpoint.reached("hostlocal.before-hint")
        self._write_hint(range_set, ip)
        return True

    def _write_hint(self, range_set: int, ip: IPAddress) -> None:
        """Record `ip` as the range set's last reserved address, in place: it is only where
        the next search starts (every candidate is still checked against the files), so a
        crash that leaves it empty or cut short costs the round robin one step, never an
        address; a temp file and rename would cost a file creation per ADD for nothing.
        Written and read under the network's lock."""
        data = str(ip).encode()
        fd = os.open(
            os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_set}"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
            0o644,
        )
        try:
            # Overwrite, then cut to length: a truncation to zero first would make ext4
            # flush the file at close (its auto_da_alloc rule for replace-by-truncate).
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def last_reserved(self, range_set: int) -> IPAddress | None:
        try:
            with open(os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_set}"), "rb") as handle:
                text = handle.read(256).decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        return _address_of(text)

    def held_by(self, container_id: str, ifname: str) -> list[Reservation]:
        """The attachment's reservations: exact `id\\r\\nifname` files, and legacy ones."""
        return [r for r in self.reservations() if r.held_by(container_id, ifname)]

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Release the attachment's addresses, as the reference's ReleaseByID: the exact
        matches, or when there are none, the container's legacy files. Idempotent."""
        mine = self.held_by(container_id, ifname)
        exact = [r for r in mine if r.ifname is not None]
        chosen = exact or mine
        for reservation in chosen:
            self.release_ip(reservation.ip)
        return [r.ip for r in chosen]

    def release_ip(self, ip: IPAddress) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(ip))

    def remove_stale_temporaries(self) -> int:
        """Delete the temp files a crash left behind: half-written reservations
        (`.tmp-reserve-*`) and last-reserved hints (`.tmp-*.part`). The caller holds the
        lock, and every write here happens under it, so none is live."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.directory):
                if name.startswith(files.TMP_PREFIX) and files.remove(os.path.join(self.directory, name)):
                    removed += 1
        return removed

    def _path(self, ip: IPAddress) -> str:
        return os.path.join(self.directory, str(ip))


def _address_of(name: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if str(ip) != name:  # only the canonical spelling, as Go's net.IP.String() writes it
        return None
    return ip


def _parse(ip: IPAddress, content: str) -> Reservation:
    text = content.strip()
    container_id, sep, ifname = text.partition(LINE_BREAK)
    if not sep:
        return Reservation(ip=ip, container_id=text, ifname=None)
    return Reservation(ip=ip, container_id=container_id.strip(), ifname=ifname.strip())
