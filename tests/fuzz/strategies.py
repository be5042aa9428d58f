"""Input strategies for the fuzz lane: any JSON, JSON shaped like what each parser expects
(its own keys with wrong, odd or random values), raw bytes, and text that includes
surrogates and control characters (what undecodable bytes and hostile annotations hold)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Every code point, surrogates (U+D800..U+DFFF) included.
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=16)
ODD_TEXT = st.one_of(
    TEXT,
    st.sampled_from([
        "", " ", ".", "..", "/", "eth0", "net1", "a" * 16, "\udc80", "\ud800", "é" * 8, "a\x00b", "a:b", "a b",
        "\u00a0", "1.0.0", "0.3.1", "1.1.0", "9.9.9", "default", "kube-system", "-1", "1e400", "NaN",
        "10.0.0.0/8", "10.1.2.3", "::1", "fd00::/64", "0.0.0.0/0", "/tmp", "relative", "a/b", "ns/name@if",
    ]),
)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), ODD_TEXT,
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(ODD_TEXT, inner, max_size=3)),
    max_leaves=5,
)


def shaped(keys: list[str], base: dict[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object over `base` with some of `keys` (and some random keys) set to anything."""
    return st.builds(
        lambda chosen, extra: {**(base or {}), **chosen, **extra},
        st.dictionaries(st.sampled_from(keys), JSON | SCALAR, max_size=5),
        st.dictionaries(ODD_TEXT, SCALAR, max_size=1),
    )


def encoded(docs: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """`docs` as JSON bytes (surrogates escaped, as JSON allows), or raw garbage."""
    return st.one_of(
        docs.map(lambda doc: json.dumps(doc).encode()),
        st.binary(max_size=100),
        st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(0, 2000)),
    )
