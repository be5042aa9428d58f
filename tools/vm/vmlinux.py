"""The uncompressed kernel inside a bzImage, for qemu's PVH direct boot.

Under TCG the guest spends about 3 s decompressing an xz bzImage before the kernel's first
line; qemu can instead load the uncompressed ELF `vmlinux` straight into memory when it
carries a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY; Debian builds with CONFIG_PVH).
`extract` finds the compressed payload by its magic, unpacks it with the standard library
and checks for that note; callers fall back to the bzImage when it answers None. Pure.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable

from tools.vm import elf

XEN_ELFNOTE_PHYS32_ENTRY = 18


def extract(bzimage: bytes) -> bytes | None:
    """The PVH-bootable ELF kernel compressed inside `bzimage`, or None if there is none."""
    unpackers: tuple[tuple[bytes, Callable[[bytes], bytes | None]], ...] = (
        (b"\xfd7zXZ\x00", _unxz),
        (b"\x1f\x8b\x08", _gunzip),
    )
    for magic, unpack in unpackers:
        at = bzimage.find(magic)
        while at >= 0:
            image = unpack(bzimage[at:])
            if image is not None and elf.has_note(image, name=b"Xen", note_type=XEN_ELFNOTE_PHYS32_ENTRY):
                return image
            at = bzimage.find(magic, at + 1)
    return None


def _unxz(data: bytes) -> bytes | None:
    try:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    except lzma.LZMAError:
        return None


def _gunzip(data: bytes) -> bytes | None:
    try:
        return zlib.decompressobj(wbits=31).decompress(data)  # 31: a gzip header; trailing bytes ignored
    except zlib.error:
        return None
