"""cni.version: what netplex speaks and how a config's version is chosen."""

from __future__ import annotations

import pytest

from cni import version
from cni.errors import CniError, Code


def test_supported_versions_are_the_five_spec_versions() -> None:
    assert version.SUPPORTED_VERSIONS == ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert version.CURRENT_VERSION == "1.1.0"


@pytest.mark.parametrize("text", ["1.0", "1.0.0.0", "v1.0.0", "1.a.0", "", " 1.0.0", "1.0.0 ", "1.-1.0", "123456.0.0"])
def test_parse_refuses_anything_but_three_numbers(text: str) -> None:
    with pytest.raises(CniError) as caught:
        version.parse(text)
    assert caught.value.code == Code.INCOMPATIBLE_VERSION


def test_parse_and_compare() -> None:
    assert version.parse("0.10.2") == (0, 10, 2)
    assert version.at_least("0.4.0", "0.4.0")
    assert version.at_least("1.0.0", "0.4.0")
    assert version.at_least("0.10.0", "0.4.0")  # numeric, not text, comparison
    assert not version.at_least("0.3.1", "0.4.0")


@pytest.mark.parametrize("requested", version.SUPPORTED_VERSIONS)
def test_negotiate_takes_a_supported_cni_version(requested: str) -> None:
    assert version.negotiate(requested) == requested


@pytest.mark.parametrize("requested", ["0.1.0", "0.2.0", "1.2.0", "2.0.0", None, ""])
def test_negotiate_refuses_an_unsupported_version_with_error_1(requested: str | None) -> None:
    with pytest.raises(CniError) as caught:
        version.negotiate(requested)
    assert caught.value.code == Code.INCOMPATIBLE_VERSION
    assert "plugin supports" in caught.value.msg


@pytest.mark.parametrize(
    ("cni_version", "cni_versions", "expected"),
    [
        ("1.0.0", ["1.0.0", "1.1.0"], "1.1.0"),  # the release notes' example
        (None, ["0.3.1", "1.1.0", "0.4.0"], "1.1.0"),
        ("1.0.0", ["1.1.0", "9.9.9"], "1.1.0"),  # versions beyond ours are skipped
        ("1.1.0", ["0.4.0"], "1.1.0"),  # cniVersion takes part, as in libcni
        ("0.4.0", ["2.0.0"], "0.4.0"),
        ("1.0.0", [], "1.0.0"),
        ("0.3.1", None, "0.3.1"),
        ("1.0.0", ["not-a-version", "0.3.0"], "1.0.0"),
    ],
)
def test_negotiate_picks_the_highest_supported_of_cni_versions(
    cni_version: str | None, cni_versions: list[str] | None, expected: str
) -> None:
    assert version.negotiate(cni_version, cni_versions) == expected


def test_negotiate_fails_when_no_listed_version_is_supported() -> None:
    with pytest.raises(CniError) as caught:
        version.negotiate(None, ["2.0.0", "0.2.0"])
    assert caught.value.code == Code.INCOMPATIBLE_VERSION
    assert "cniVersions" in caught.value.msg
    with pytest.raises(CniError) as caught:
        version.negotiate("0.2.0", ["2.0.0"])
    assert caught.value.code == Code.INCOMPATIBLE_VERSION


def test_version_info_answers_in_the_requested_version_when_spoken() -> None:
    supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    assert version.version_info("0.4.0") == {"cniVersion": "0.4.0", "supportedVersions": supported}
    assert version.version_info("0.2.0") == {"cniVersion": "1.1.0", "supportedVersions": supported}
    assert version.version_info(None) == {"cniVersion": "1.1.0", "supportedVersions": supported}
