"""cni.jsonlimits: depth and size are bounded before parsing, strings do not count."""

from __future__ import annotations

import pytest

from cni import jsonlimits
from cni.errors import CniError


def test_brackets_inside_strings_do_not_count() -> None:
    assert jsonlimits.depth_of(b'[{"a": "[[[[{{{{\\"]]"}]') == 2


@pytest.mark.parametrize("body", [b"[" * 200_000, b"{" * 65, b'{"a":' * 100 + b"1" + b"}" * 100])
def test_deep_documents_are_error_6_without_recursion(body: bytes) -> None:
    with pytest.raises(CniError) as caught:
        jsonlimits.loads(body, max_bytes=1 << 20)
    assert caught.value.code == 6 and "nests deeper" in caught.value.msg


def test_oversize_and_bad_json_are_error_6() -> None:
    with pytest.raises(CniError, match="larger than 4 bytes"):
        jsonlimits.check(b"[1,2]", max_bytes=4)
    with pytest.raises(CniError, match="not valid JSON"):
        jsonlimits.loads(b"\xff", max_bytes=10)


def test_a_document_at_the_limit_parses() -> None:
    doc = jsonlimits.loads(b"[" * 64 + b"]" * 64, max_bytes=1000)
    for _ in range(63):
        doc = doc[0]
    assert doc == []
