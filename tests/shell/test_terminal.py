"""The shell on a pseudo-terminal: TAB completion, the guided flow, errors, Ctrl-C, Ctrl-D, history."""

from __future__ import annotations

import stat
from pathlib import Path

import pexpect
import yaml
from lxml import etree

from .conftest import PROMPT, Terminal, history_lines


def test_tab_completes_a_scenario_name(terminal: Terminal, history: Path) -> None:
    terminal.expect(PROMPT)
    terminal.tab("create des")
    terminal.child.send(" --name tabbed --print-xml\r")
    terminal.expect(r"</domain>")
    xml = terminal.text[terminal.text.index("<domain"):terminal.text.index("</domain>") + 9]
    root = etree.fromstring(xml.encode())
    assert root.findtext("name") == "tabbed"
    assert root.find("metadata/{urn:virtscenario:domain:1}scenario").get("name") == "desktop"
    assert terminal.leave() == 0
    assert history_lines(history) == ["create desktop --name tabbed --print-xml"]


def test_tab_completes_a_setting_key_and_its_value(terminal: Terminal, history: Path) -> None:
    terminal.line("use desktop")
    terminal.expect(r"Scenario desktop: ")
    terminal.expect(r"virtscenario desktop/desktop>")
    terminal.tab("set disk.ca")
    terminal.tab(" writeb")
    terminal.child.send("\r")
    terminal.expect(r"disk\.cache = writeback")
    terminal.line("show disk.cache")
    row = terminal.expect(r"\n\*\s+disk\.cache\s+(\S+)\s+flag --set disk\.cache").group(1)
    assert row == "writeback"
    assert terminal.leave() == 0
    assert history_lines(history) == ["use desktop", "set disk.cache writeback", "show disk.cache"]


def test_guided_flow_from_use_to_create(terminal: Terminal, tmp_path: Path) -> None:
    store = tmp_path / "store"
    terminal.line("use desktop")
    terminal.line("name demo")
    terminal.expect(r"name = demo")
    terminal.line("vcpu 4")
    terminal.expect(r"vm\.vcpus = 4")
    terminal.line("memory 3")  # upstream's GiB
    terminal.expect(r"vm\.memory = 3GiB")
    terminal.line("show vm.vcpus vm.memory")
    shown = terminal.expect(r"\* set in this shell").string
    rows = [line.split()[:3] for line in shown.splitlines()]
    assert ["*", "vm.memory", "3GiB"] in rows and ["*", "vm.vcpus", "4"] in rows
    terminal.line("xml")
    terminal.expect(r"</domain>")
    xml = terminal.text[terminal.text.rindex("<domain"):terminal.text.rindex("</domain>") + 9]
    assert etree.fromstring(xml.encode()).findtext("vcpu") == "4"
    assert not store.exists(), "xml writes nothing"
    terminal.line(f"create --output {store}")
    terminal.expect(rf"{store}/demo/: domain\.xml, vm\.yaml")
    terminal.expect(r"What desktop decides differently")
    assert terminal.leave() == 0
    domain = etree.parse(str(store / "demo" / "domain.xml")).getroot()
    assert domain.findtext("name") == "demo" and domain.findtext("vcpu") == "4"
    assert domain.find("memory").text == str(3 * 1024 * 1024)
    record = yaml.safe_load((store / "demo" / "vm.yaml").read_text())
    assert record["scenario"] == "desktop" and record["name"] == "demo"
    vcpus = next(s for s in record["settings"] if s["key"] == "vm.vcpus")
    assert (vcpus["value"], vcpus["layer"], vcpus["origin"]) == (4, "flag", "--set vm.vcpus")
    assert (store / "demo" / "demo.qcow2").is_file()


def test_an_error_is_one_line_and_the_shell_goes_on(terminal: Terminal) -> None:
    terminal.line("set vm.vcpus lots")
    terminal.expect(r"Error: setting 'vm\.vcpus': expected an integer, got 'lots'\n")
    terminal.line("frobnicate")
    terminal.expect(r"Error: unknown command 'frobnicate'; 'help' lists the commands\n")
    terminal.line("create nosuch --name x --print-xml")
    terminal.expect(r"Error: unknown scenario 'nosuch'")
    terminal.line("crate desktop")
    terminal.expect(r"Error: unknown command 'crate'; did you mean 'create'\?\n")
    mark = terminal.pos
    terminal.line("scenarios list")
    terminal.expect(r"desktop\s+1\.0\s+desktop")
    errors = [line for line in terminal.text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 4 and "Traceback" not in terminal.text
    assert "Error" not in terminal.since(mark)
    assert terminal.leave() == 0


def test_ctrl_c_cancels_the_line(terminal: Terminal, tmp_path: Path, history: Path) -> None:
    store = tmp_path / "store"
    terminal.expect(PROMPT)
    terminal.child.send(f"create desktop --name cancelled --output {store}")
    terminal.expect("cancelled --output")  # typed, not run
    terminal.child.sendcontrol("c")
    terminal.line("scenarios list")
    terminal.expect(r"computation\s+1\.0")
    assert terminal.leave() == 0
    assert not store.exists()
    assert history_lines(history) == ["scenarios list"]


def test_exit_and_ctrl_d_leave_with_status_0(terminal: Terminal, shell_env: dict[str, str], tmp_path: Path) -> None:
    terminal.line("set vm.vcpus nope")  # a failed line does not decide the shell's status
    terminal.expect(r"Error: setting 'vm\.vcpus'")
    assert terminal.leave() == 0
    other = Terminal(shell_env, tmp_path)
    other.line("exit")
    other.child.expect(pexpect.EOF, timeout=30)
    other.child.close()
    assert other.child.exitstatus == 0


def test_history_is_private_and_keeps_no_secret(terminal: Terminal, history: Path) -> None:
    terminal.line("scenarios list")
    terminal.expect(r"securevm\s+1\.0")
    terminal.line("set vm.title password=hunter2")
    terminal.expect(r"vm\.title = password=hunter2")
    terminal.line(" settings")  # a leading space keeps a line out, as with bash's ignorespace
    terminal.expect(r"vm\.virt_type\s+kvm\|qemu")
    assert terminal.leave() == 0
    assert history_lines(history) == ["scenarios list"]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700
