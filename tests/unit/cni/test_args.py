"""cni.args: the CNI_ARGS `K=V;K=V` string and libcni's IgnoreUnknown rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import args
from cni.errors import CniError, Code


def test_parses_the_pairs_kubelet_sends() -> None:
    raw = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=3f69;K8S_POD_UID=u-1"
    assert args.parse_cni_args(raw) == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAMESPACE": "default",
        "K8S_POD_NAME": "web-0",
        "K8S_POD_INFRA_CONTAINER_ID": "3f69",
        "K8S_POD_UID": "u-1",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("A=1;", {"A": "1"}),  # a trailing ';' is an empty segment, skipped
        (";;A=1;;B=2", {"A": "1", "B": "2"}),
        ("A=", {"A": ""}),
        ("A=b=c", {"A": "b=c"}),  # values may hold '='
        ("A=1;A=2", {"A": "2"}),  # the last wins
        ("IP=10.1.0.5,fd00::5", {"IP": "10.1.0.5,fd00::5"}),
    ],
)
def test_lenient_where_libcni_is_strict(raw: str, expected: dict[str, str]) -> None:
    assert args.parse_cni_args(raw) == expected


@pytest.mark.parametrize("raw", ["A", "A=1;B", "=1", "A=1;=2", "justtext"])
def test_a_pair_without_key_or_equals_is_error_4_naming_cni_args(raw: str) -> None:
    with pytest.raises(CniError) as caught:
        args.parse_cni_args(raw)
    assert caught.value.code == Code.INVALID_ENVIRONMENT
    assert caught.value.msg.startswith("CNI_ARGS")


def test_overlong_cni_args_is_error_4() -> None:
    with pytest.raises(CniError) as caught:
        args.parse_cni_args("A=" + "x" * args.MAX_ARGS_LENGTH)
    assert caught.value.code == Code.INVALID_ENVIRONMENT
    assert "CNI_ARGS" in caught.value.msg


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("TRUE", True), ("t", True),
                                                 ("0", False), ("false", False), ("yes", False), ("", False)])
def test_ignore_unknown_flag(value: str, expected: bool) -> None:
    assert args.ignore_unknown({"IgnoreUnknown": value}) is expected


def test_unknown_keys_are_refused_unless_ignore_unknown() -> None:
    known = {"IP", "MAC"}
    args.check_known({"IP": "10.0.0.2"}, known)
    args.check_known({"IP": "10.0.0.2", "K8S_POD_NAME": "web", "IgnoreUnknown": "true"}, known)
    with pytest.raises(CniError) as caught:
        args.check_known({"IP": "10.0.0.2", "K8S_POD_NAME": "web", "IgnoreUnknown": "0"}, known)
    assert caught.value.code == Code.INVALID_ENVIRONMENT
    assert "'K8S_POD_NAME'" in caught.value.msg


_KEY = st.text(st.characters(blacklist_characters=";=", blacklist_categories=["Cs"]), min_size=1, max_size=12)
_VALUE = st.text(st.characters(blacklist_characters=";", blacklist_categories=["Cs"]), max_size=20)


@given(st.dictionaries(_KEY, _VALUE, max_size=6))
def test_format_and_parse_round_trip(pairs: dict[str, str]) -> None:
    assert args.parse_cni_args(args.format_cni_args(pairs)) == pairs


@given(st.text(max_size=200))
def test_any_text_parses_or_is_error_4(raw: str) -> None:
    try:
        parsed = args.parse_cni_args(raw)
    except CniError as err:
        assert err.code == Code.INVALID_ENVIRONMENT
    else:
        assert all(key and ";" not in key and "=" not in key for key in parsed)
