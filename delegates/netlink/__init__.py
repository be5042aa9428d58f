"""The netlink layer: the only package that imports pyroute2.

Modules: `netns` (create, remove and enter namespaces), `links`, `addrs`, `routes`,
`sysctl`; each function takes a namespace path and typed values. Importing this package
itself is cheap: it re-exports only the exceptions, which need no pyroute2, so callers can
catch `NetlinkFailure` without paying for the netlink import.
"""

from delegates.netlink.errors import (
    KindNotSupported,
    LinkExists,
    LinkNotFound,
    NetlinkFailure,
    NetnsNotFound,
    WrongLinkKind,
)

__all__ = [
    "KindNotSupported",
    "LinkExists",
    "LinkNotFound",
    "NetlinkFailure",
    "NetnsNotFound",
    "WrongLinkKind",
]
