"""What TAB offers, line by line (in-process: the same Completer the terminal uses)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from virtscenario.cli.shell.complete import Completer, split_line
from virtscenario.cli.shell.guided import GuidedState
from virtscenario.plugin.hooks import Catalog


@pytest.fixture
def state() -> GuidedState:
    return GuidedState()


def offered(state: GuidedState, line: str) -> list[str]:
    found, typed = Completer(state, Catalog).complete(line)
    assert line.endswith(typed)
    return [c.text for c in found]


@pytest.mark.parametrize("line,words,incomplete,raw", [
    ("", (), "", ""),
    ("create des", ("create",), "des", "des"),
    ("create desktop ", ("create", "desktop"), "", ""),
    ("set vm.title 'two wo", ("set", "vm.title"), "two wo", "'two wo"),
    ('cdrom "a b"/c', ("cdrom",), "a b/c", '"a b"/c'),
    ("cdrom a\\ b", ("cdrom",), "a b", "a\\ b"),
])
def test_lines_split_like_a_shell(line: str, words: tuple[str, ...], incomplete: str, raw: str) -> None:
    split = split_line(line)
    assert (split.words, split.incomplete, split.raw) == (words, incomplete, raw)


def test_first_word_offers_shell_words_and_cli_commands(state: GuidedState) -> None:
    first = offered(state, "")
    assert {"use", "set", "unset", "show", "xml", "create", "help", "exit", "quit"} <= set(first)
    assert {"vcpu", "memory", "vmimage", "vnet", "encryption", "bootdev", "name"} <= set(first)
    assert {"scenarios", "settings", "host", "hosts", "validate", "plugins"} <= set(first)
    assert offered(state, "sc") == ["scenarios"]
    assert offered(state, "--de") == ["--debug"]


def test_cli_lines_complete_commands_options_and_values(state: GuidedState) -> None:
    assert offered(state, "create des") == ["desktop"]
    assert offered(state, "scenarios show comp") == ["computation"]
    assert offered(state, "host plan sec") == ["securevm"]
    assert offered(state, "scenarios ") == ["compare", "list", "show"]
    assert offered(state, "create desktop --pr") == ["--print-xml"]
    assert offered(state, "create desktop --virt-type ") == ["kvm", "qemu"]
    assert offered(state, "create desktop --set disk.ca") == ["disk.cache="]
    assert offered(state, "create desktop --set disk.cache=write") == ["disk.cache=writeback",
                                                                       "disk.cache=writethrough"]
    assert offered(state, "create desktop --set=vm.vc") == ["--set=vm.vcpus="]
    assert offered(state, "scenarios show desktop --set firmware.type=") == ["firmware.type=efi",
                                                                            "firmware.type=bios"]


def test_guided_words_complete_scenarios_keys_and_values(state: GuidedState) -> None:
    assert offered(state, "use ") == ["computation", "desktop", "securevm", "testing"]
    assert offered(state, "set disk.ca") == ["disk.cache"]
    assert offered(state, "set disk.cache ") == ["none", "writeback", "writethrough", "directsync", "unsafe"]
    assert offered(state, "set disk.encryption o") == ["on", "off"]
    assert offered(state, "set disk.format=r") == ["disk.format=raw"]
    assert offered(state, "set vm.vcpus ") == []
    assert offered(state, "format ") == ["qcow2", "raw"]
    assert offered(state, "cache un") == ["unsafe"]
    assert offered(state, "encryption ") == ["on", "off"]
    assert offered(state, "overwrite o") == ["on", "off"]
    assert offered(state, "bootdev ") == ["hd", "cdrom"]
    assert offered(state, "show vm.v") == ["vm.vcpus", "vm.virt_type"]
    assert offered(state, "help vc") == ["vcpu"]
    assert offered(state, "xml --pr") == ["--print-xml"]


def test_unset_offers_what_was_set(state: GuidedState) -> None:
    state.settings["disk.cache"] = "none"
    state.options["--cdrom"] = "/x.iso"
    state.name = "demo"
    assert offered(state, "unset ") == ["disk.cache", "cdrom", "name", "all"]


def test_paths_complete_and_are_quoted(state: GuidedState, tmp_path: Path) -> None:
    (tmp_path / "my iso.iso").write_text("")
    (tmp_path / "images").mkdir()
    (tmp_path / ".hidden").write_text("")
    base = f"{tmp_path}/"
    assert offered(state, f"cdrom {base}") == [f"{base}images/", f"'{base}my iso.iso'"]
    assert offered(state, f"diskpath {base}") == [f"{base}images/"]
    assert offered(state, f"cdrom {base}.h") == [f"{base}.hidden"]
    assert offered(state, f"validate {base}my") == [f"'{base}my iso.iso'"]


def test_vm_names_come_from_the_store(state: GuidedState, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name in ("alpha", "beta"):
        (store / name).mkdir(parents=True)
        (store / name / "vm.yaml").write_text("name: x\n")
    (store / "not-a-vm").mkdir()
    state.options["--output"] = str(store)
    assert offered(state, "name ") == ["alpha", "beta"]
    assert offered(state, "show b") == ["beta"]  # show NAME, next to setting keys
    assert offered(state, f"migrate-check --output {store} b") == ["beta"]


def test_host_names_come_from_the_inventory(state: GuidedState) -> None:
    inventory = Path(os.environ["XDG_CONFIG_HOME"]) / "virtscenario" / "hosts.yaml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text("hosts:\n  epyc1: {uri: 'qemu+ssh://epyc1/system'}\n"
                         "  xeon2: {uri: 'qemu+tcp://xeon2/system'}\n")
    assert offered(state, "hosts check ") == ["epyc1", "xeon2"]
    assert offered(state, "migrate-check web --to x") == ["xeon2"]
    assert offered(state, "migrate-check web --to xeon2 --from ") == ["epyc1", "xeon2"]
    inventory.write_text("hosts: [broken\n")
    assert offered(state, "hosts check ") == []  # a broken inventory completes nothing, and says nothing
