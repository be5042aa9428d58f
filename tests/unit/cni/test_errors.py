"""cni.errors: the spec's error codes and the error JSON, both ways."""

from __future__ import annotations

import pytest

from cni.errors import CniError, Code, MultiError


def test_codes_are_the_spec_well_known_codes() -> None:
    assert {code.name: int(code) for code in Code} == {
        "INCOMPATIBLE_VERSION": 1,
        "UNSUPPORTED_FIELD": 2,
        "UNKNOWN_CONTAINER": 3,
        "INVALID_ENVIRONMENT": 4,
        "IO_FAILURE": 5,
        "DECODING_FAILURE": 6,
        "INVALID_NETWORK_CONFIG": 7,
        "TRY_AGAIN_LATER": 11,
        "NOT_AVAILABLE": 50,
        "NOT_AVAILABLE_LIMITED": 51,
        "INTERNAL": 999,
    }


def test_error_json_has_the_spec_keys_and_omits_empty_details() -> None:
    assert CniError(Code.INVALID_NETWORK_CONFIG, "mtu: too big").to_wire("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 7,
        "msg": "mtu: too big",
    }
    assert CniError(7, "Invalid Configuration", "Network 192.168.0.0/31 too small to allocate from.").to_wire(
        "1.1.0"
    ) == {
        "cniVersion": "1.1.0",
        "code": 7,
        "msg": "Invalid Configuration",
        "details": "Network 192.168.0.0/31 too small to allocate from.",
    }


def test_code_is_a_plain_int_and_str_is_the_message() -> None:
    err = CniError(Code.TRY_AGAIN_LATER, "busy")
    assert type(err.code) is int
    assert err.code == 11
    assert str(err) == "busy"
    assert repr(err) == "CniError(11, 'busy')"


def test_prefixed_keeps_code_and_details() -> None:
    err = CniError(Code.NOT_AVAILABLE, "no addresses left", "range 10.0.0.0/30 is full").prefixed('network "a"')
    assert (err.code, err.msg, err.details) == (50, 'network "a": no addresses left', "range 10.0.0.0/30 is full")


def test_from_wire_reads_a_plugin_error_document() -> None:
    err = CniError.from_wire({"cniVersion": "1.0.0", "code": 107, "msg": "boom", "details": "more"}, fallback="x")
    assert (err.code, err.msg, err.details) == (107, "boom", "more")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (None, (999, "fallback")),
        ([1, 2], (999, "fallback")),
        ({"code": 7}, (7, "fallback")),
        ({"code": 7, "msg": ""}, (7, "fallback")),
        ({"code": "7", "msg": "text code"}, (999, "text code")),
        ({"code": True, "msg": "bool code"}, (999, "bool code")),
        ({"code": 0, "msg": "zero is no failure code"}, (999, "zero is no failure code")),
        ({"code": -3, "msg": "negative"}, (999, "negative")),
        ({"msg": "no code"}, (999, "no code")),
        ({"code": 3, "msg": 42}, (3, "fallback")),
    ],
)
def test_from_wire_never_yields_a_failure_without_a_code(doc: object, expected: tuple[int, str]) -> None:
    err = CniError.from_wire(doc, fallback="fallback")
    assert (err.code, err.msg) == expected
    assert err.details == ""


def test_multi_error_keeps_every_error_and_the_first_code() -> None:
    first = CniError(Code.IO_FAILURE, "a failed", "disk")
    second = CniError(Code.INTERNAL, "b failed")
    third = CniError(Code.TRY_AGAIN_LATER, "c failed", "busy")
    err = MultiError([first, second, third])
    assert isinstance(err, CniError)
    assert err.errors == [first, second, third]
    assert (err.code, err.msg, err.details) == (5, "a failed; b failed; c failed", "disk; busy")


def test_multi_error_needs_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MultiError([])
