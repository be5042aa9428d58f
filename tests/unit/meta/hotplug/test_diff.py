"""meta.hotplug.diff: what stays, what goes, what comes and under which name."""

from __future__ import annotations

from meta.hotplug.diff import Change, Have, Want, diff


def have(network: str, ifname: str, **args: object) -> Have:
    return Have(f"default/{network}", ifname, dict(args))


def want(network: str, interface: str = "", **args: object) -> Want:
    return Want(f"default/{network}", interface, dict(args))


def test_an_unchanged_selection_changes_nothing() -> None:
    assert diff([have("blue", "net1"), have("green", "net2")], [want("blue"), want("green")]).empty


def test_a_new_network_gets_the_next_generated_name() -> None:
    assert diff([have("blue", "net1")], [want("blue"), want("green")]) == Change(add=((1, "net2"),))


def test_two_new_networks_come_in_annotation_order() -> None:
    change = diff([have("blue", "net1")], [want("blue"), want("red"), want("green")])
    assert change.add == ((1, "net2"), (2, "net3"))


def test_removing_from_the_middle_keeps_the_others() -> None:
    change = diff([have("blue", "net1"), have("green", "net2"), have("red", "net3")], [want("blue"), want("red")])
    assert change == Change(remove=(1,))


def test_removals_come_in_reverse_order() -> None:
    change = diff([have("blue", "net1"), have("green", "net2"), have("red", "net3")], [want("green")])
    assert change.remove == (2, 0)


def test_a_replacement_does_not_reuse_the_removed_name() -> None:
    change = diff([have("blue", "net1"), have("green", "net2")], [want("blue"), want("red")])
    assert change == Change(remove=(1,), add=((1, "net3"),))


def test_generated_names_continue_past_the_highest_in_use() -> None:
    change = diff([have("blue", "net7")], [want("blue"), want("green")], reserved={"eth0"})
    assert change.add == ((1, "net8"),)


def test_an_explicit_interface_wins_and_a_rename_is_a_replacement() -> None:
    change = diff([have("blue", "blue0")], [want("blue", "blue1")])
    assert change == Change(remove=(0,), add=((0, "blue1"),))


def test_an_attachment_with_an_explicit_name_does_not_match_a_generic_selection() -> None:
    change = diff([have("blue", "blue0")], [want("blue")])
    assert change == Change(remove=(0,), add=((0, "net1"),))


def test_explicit_selections_are_matched_before_generic_ones() -> None:
    change = diff([have("blue", "net1"), have("blue", "net2")], [want("blue"), want("blue", "net1")])
    assert change.empty


def test_changed_runtime_arguments_replace_the_attachment() -> None:
    change = diff([have("blue", "net1", ips=["10.0.0.5/24"])], [want("blue", ips=["10.0.0.6/24"])])
    assert change == Change(remove=(0,), add=((0, "net2"),))


def test_an_explicit_name_clashing_with_a_kept_attachment_is_refused() -> None:
    change = diff([have("blue", "net1")], [want("blue"), want("green", "net1")])
    assert change.refused == ((1, "interface 'net1' is already in use in the pod"),) and not change.add


def test_an_explicit_name_taken_by_a_foreign_link_is_refused() -> None:
    change = diff([], [want("green", "vxlan0")], reserved={"eth0", "vxlan0"})
    assert [index for index, _ in change.refused] == [0]


def test_a_generated_name_skips_names_selections_ask_for() -> None:
    change = diff([have("blue", "net1")], [want("blue"), want("green"), want("red", "net2")])
    assert change.add == ((1, "net3"), (2, "net2"))
