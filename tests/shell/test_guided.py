"""The guided flow in-process: upstream's verbs become our keys and create options, errors are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtscenario.cli.shell.repl import Leave, Shell


@pytest.fixture
def shell() -> Shell:
    return Shell(chatty=True)


def ok(shell: Shell, line: str) -> None:
    outcome = shell.execute(line)
    assert outcome.ok, outcome.message


def fails(shell: Shell, line: str) -> str:
    outcome = shell.execute(line)
    assert not outcome.ok and outcome.message and "\n" not in outcome.message
    return outcome.message


def test_upstream_verbs_map_to_keys_and_create_options(shell: Shell, tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"")
    iso = tmp_path / "install.iso"
    iso.write_bytes(b"")
    for line in ("use computation", "name calc", "vcpu 8", "memory 16", "machine pc", "vnet isolated",
                 f"vmimage {image}", f"cdrom {iso}", f"diskpath {tmp_path}/images", "capacity 30", "format raw",
                 "cache writeback", "encryption off", "overwrite on", "bootdev cdrom"):
        ok(shell, line)
    assert shell.state.create_args() == [
        "computation", "--name", "calc",
        "--set", "vm.vcpus=8", "--set", "vm.memory=16GiB", "--set", "vm.machine=pc",
        "--set", f"disk.directory={tmp_path}/images", "--set", "disk.size=30GiB", "--set", "disk.format=raw",
        "--set", "disk.cache=writeback", "--set", "disk.encryption=off",
        "--network", "network=isolated", "--disk", f"path={image}", "--cdrom", str(iso), "--force"]
    ok(shell, "unset vnet")
    ok(shell, "unset vm.vcpus")
    ok(shell, "overwrite off")
    args = shell.state.create_args()
    assert "--network" not in args and "vm.vcpus=8" not in args and "--force" not in args


def test_set_checks_values_at_once(shell: Shell) -> None:
    assert fails(shell, "set disk.cachee none") == "unknown setting 'disk.cachee'; did you mean 'disk.cache'?"
    assert "expected an integer" in fails(shell, "vcpu many")
    assert "is not one of none, writeback" in fails(shell, "cache fast")
    assert fails(shell, "set vm.vcpus") == "usage: set KEY VALUE (or set KEY=VALUE; quote a value with spaces)"
    assert fails(shell, "cdrom /nonexistent.iso") == "cdrom /nonexistent.iso: no such file"
    assert "must not contain '/'" in fails(shell, "name a/b")
    ok(shell, "set vm.title='My desktop'")
    ok(shell, "set vm.vcpus=3")
    assert shell.state.settings == {"vm.title": "My desktop", "vm.vcpus": "3"}


def test_show_xml_and_create_need_a_scenario(shell: Shell) -> None:
    for line in ("show", "xml", "create", "create --define"):
        assert fails(shell, line).startswith("no scenario chosen: 'use SCENARIO' first")
    assert fails(shell, "use deskop").startswith("unknown scenario 'deskop'; did you mean 'desktop'?")


def test_show_marks_what_this_shell_set(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "use securevm")
    ok(shell, "set disk.cache unsafe")
    capsys.readouterr()
    ok(shell, "show disk")
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["*"]:
            rows[words[1]] = line
        elif words and words[0].startswith("disk."):
            rows[words[0]] = line
    assert rows["disk.cache"].split()[:3] == ["*", "disk.cache", "unsafe"] and "set by the user (scenario chose" in out
    assert not rows["disk.format"].startswith("*") and "scenario securevm" in rows["disk.format"]
    assert "vm.vcpus" not in out  # the prefix keeps only disk.*
    assert out.startswith("securevm 1.0 (virtscenario-securevm") and "VM securevm (the scenario's name" in out
    assert fails(shell, "show nosuch") == ("show nosuch: no setting key starts with that (see 'settings'), "
                                           "and no VM of that name is in the store ('list')")


def test_show_with_nothing_set_prints_the_table(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    # The mark column is empty on every row then: it once made the table wrap at width 0.
    ok(shell, "use desktop")
    capsys.readouterr()
    ok(shell, "show")
    out = capsys.readouterr().out
    assert "KEY" in out and any(line.split()[:2] == ["disk.cache", "none"] for line in out.splitlines())
    ok(shell, "show vm.vcpus")
    assert "vm.vcpus" in capsys.readouterr().out


def test_show_name_is_the_cli_command_for_a_stored_vm(shell: Shell, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    ok(shell, f"create desktop --name kept --output {store}")
    capsys.readouterr()
    ok(shell, f"show kept --output {store} --json")
    assert '"name": "kept"' in capsys.readouterr().out
    ok(shell, f"output {store}")
    capsys.readouterr()
    ok(shell, "show kept")  # no option: a VM name that is no setting prefix
    assert "kept" in capsys.readouterr().out
    assert "show nosuch" in fails(shell, "show nosuch")


def test_upstream_words_without_equivalent_say_what_to_do(shell: Shell) -> None:
    assert fails(shell, "hvselect epyc1") == "'hvselect' is upstream virt-scenario's: use 'connect URI' " \
                                             "(or 'hosts list' for the inventory's URIs)"
    assert "host plan SCENARIO" in fails(shell, "mode host")
    assert fails(shell, "desktop") == "'desktop' is a scenario: 'use desktop' then 'create' " \
                                      "(or 'create desktop --name NAME')"
    assert "runs virtscenario commands only" in fails(shell, "!ls")
    assert "runs virtscenario commands only" in fails(shell, "shell")
    assert fails(shell, "bootdev network").startswith("bootdev network: not supported")
    assert fails(shell, "bootdev cdrom").startswith("bootdev cdrom: attach the ISO with 'cdrom FILE' first")
    assert fails(shell, "sett") == "unknown command 'sett'; did you mean 'set'?"
    assert fails(shell, "use 'desktop") == "cannot split the line into words: No closing quotation"


def test_create_with_a_scenario_is_the_command_lines(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "use desktop")
    ok(shell, "vcpu 3")
    capsys.readouterr()
    ok(shell, "create computation --name other --print-xml")  # the CLI's create: nothing of the guided state
    out = capsys.readouterr().out
    assert "<name>other</name>" in out and "<vcpu placement=\"static\">3</vcpu>" not in out
    ok(shell, "xml --virt-type qemu")
    out = capsys.readouterr().out
    assert '<domain type="qemu">' in out and '<vcpu placement="static">3</vcpu>' in out


def test_help_and_exit(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "help")
    out = capsys.readouterr().out
    for word in ("use SCENARIO", "vmimage VALUE", "--disk: use this existing image", "scenarios", "migrate-check"):
        assert word in out
    ok(shell, "? vnet")
    assert "vnet VALUE  (--network)" in capsys.readouterr().out
    ok(shell, "help scenarios")
    assert "Usage: virtscenario scenarios" in capsys.readouterr().out
    for word in ("exit", "quit"):
        with pytest.raises(Leave):
            shell.execute(word)
