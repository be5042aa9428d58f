"""Just enough ELF (64-bit little-endian) to answer two questions about a binary.

Is it static (no PT_INTERP: it can run in an initramfs without ld.so)? Does it carry a
given note (the kernel's PVH entry point)? Pure; malformed input answers False.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

PT_INTERP = 3
PT_NOTE = 4


def is_static(data: bytes) -> bool:
    """Whether `data` is an ELF executable that needs no program interpreter."""
    headers = _program_headers(data)
    return headers is not None and all(p_type != PT_INTERP for p_type, _ in headers)


def has_note(data: bytes, *, name: bytes, note_type: int) -> bool:
    """Whether a PT_NOTE segment of the ELF `data` holds a note `name` of type `note_type`."""
    for p_type, segment in _program_headers(data) or []:
        if p_type == PT_NOTE and any(note_name == name and kind == note_type for note_name, kind in _notes(segment)):
            return True
    return False


def _program_headers(data: bytes) -> list[tuple[int, bytes]] | None:
    """(p_type, segment bytes in the file) per program header, or None if not a 64-bit LE ELF."""
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    try:
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        headers = []
        for index in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + index * phentsize)
            headers.append((p_type, data[p_offset : p_offset + p_filesz]))
    except struct.error:
        return None
    return headers


def _notes(segment: bytes) -> Iterator[tuple[bytes, int]]:
    at = 0
    while at + 12 <= len(segment):
        namesz, descsz, kind = struct.unpack_from("<III", segment, at)
        start = at + 12
        yield segment[start : start + namesz].rstrip(b"\0"), kind
        at = start + _align4(namesz) + _align4(descsz)


def _align4(size: int) -> int:
    return (size + 3) & ~3
