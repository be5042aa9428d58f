"""nft transactions through libnftables (ctypes), from a thread that entered the pod's
network namespace: the same JSON, the same one-transaction semantics as `nft -j -f -`,
without a child process per pod (fork and exec of nsenter and nft cost ~30 ms on this
machine; a call here, ~1-3 ms).

The thread comes from delegates/netlink/netns.py (`call`): it setns()'s into the pod's
namespace, creates the libnftables context there (its netlink socket belongs to that
namespace), runs the batch, frees the context and ends; the daemon's other threads stay
in the node's namespace. Calls are serialised by a lock: older libnftables releases are
not documented as thread-safe. `available()` is False when the library cannot be loaded;
nft.py then runs the nft tool in a child instead."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

from delegates.netlink import netns

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON: also makes libnftables parse its input as JSON
_LOCK = threading.Lock()


class LibnftError(RuntimeError):
    """libnftables refused the batch; the message is its first error line."""


def available() -> bool:
    return _load() is not None


def run(netns_path: str, document: str) -> None:
    """Run the nft JSON `document` as one transaction inside `netns_path`."""
    lib = _load()
    if lib is None:
        raise LibnftError("libnftables is not available")
    data = document.encode()

    def in_namespace() -> None:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise LibnftError("nft_ctx_new failed")
        try:
            lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if lib.nft_run_cmd_from_buffer(ctx, data) != 0:
                error = lib.nft_ctx_get_error_buffer(ctx) or b""
                line = (error.decode(errors="replace").strip().splitlines() or ["failed"])[0][:300]
                raise LibnftError(line)
        finally:
            lib.nft_ctx_free(ctx)

    with _LOCK:
        netns.call(netns_path, in_namespace)


@functools.cache
def _load() -> ctypes.CDLL | None:
    """The library with its signatures declared, once; None when it cannot be loaded."""
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib
