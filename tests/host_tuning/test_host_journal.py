"""A damaged journal never damages the host: validated as a whole, refused in one line, nothing restored."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from virtscenario_host_tuning import journal

from . import fakehost

JOURNAL = "var/lib/virtscenario/host-journal.json"


def _cli(run_cli, host, *args):
    return run_cli(["--host-root", str(host.root), "host", *args])


def _error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (result.exit_code,
                                                                                          result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


@pytest.fixture
def applied(run_cli, make_host):
    """A tree with tcomp applied and persisted: tunables, new files and a changed /etc/fstab journaled."""
    host = make_host(fakehost.amd_sev(extra_files={"/var/lib/dpkg/status": "Package: base-files\n"}))
    original = fakehost.snapshot(host.root)
    result = _cli(run_cli, host, "apply", "tcomp", "--yes", "--persist")
    assert result.exit_code == 0, result.output
    return host, original


def _doc(host) -> dict:
    return json.loads((host.root / JOURNAL).read_text())


def _write(host, doc, *, reseal: bool) -> None:
    if reseal:  # a consistent checksum: only the schema can catch the damage
        doc["checksum"] = journal.checksum(doc)
    (host.root / JOURNAL).write_text(json.dumps(doc))


def _index(doc, path: str) -> int:
    return next(i for i, e in enumerate(doc["entries"]) if e["path"] == path)


def _refused_everywhere(run_cli, host, expected: str) -> None:
    """revert and apply both stop on the journal with ``expected`` in one line, and change nothing."""
    before = fakehost.snapshot(host.root)
    for args in (("revert", "--yes"), ("apply", "tdesk", "--yes", "--persist")):
        line = _error(_cli(run_cli, host, *args))
        assert expected in line, line
        assert line.endswith("nothing was changed"), line
        assert fakehost.diff(before, fakehost.snapshot(host.root)) == []


FSTAB = "/etc/fstab"
SWAP = "/proc/sys/vm/swappiness"


def _set(path, key, value):
    def change(doc):
        i = _index(doc, path)
        doc["entries"][i][key] = value
        return f"entries[{i}] ({doc['entries'][i]['path']}): "
    return change


DAMAGE = {
    "base64 that is not base64": (_set(FSTAB, "before_b64", "###not base64###"), "before_b64 is not valid base64"),
    "base64 with a hidden byte": (_set(FSTAB, "before_b64", "IyBmc3RhYgo=\n"), "before_b64 is not valid base64"),
    "mode -1": (_set(FSTAB, "mode", -1), "mode -1 is not a permission"),
    "mode 2147483647": (_set(FSTAB, "mode", 2147483647), "mode 2147483647 is not a permission"),
    "mode setuid": (_set(FSTAB, "mode", 0o4777), "mode 2559 is not a permission"),
    "mode as text": (_set(FSTAB, "mode", "644"), "mode has the wrong type (str)"),
    "mode true": (_set(FSTAB, "mode", True), "mode has the wrong type (bool)"),
    "uid negative": (_set(FSTAB, "uid", -5), "uid out of range"),
    "existed as a string": (_set(FSTAB, "existed", "yes"), "existed has the wrong type"),
    "file elsewhere": (_set(FSTAB, "path", "/etc/shadow"), "/etc/shadow is not a file virtscenario writes"),
    "path with ..": (_set(FSTAB, "path", "/etc/sysctl.d/../fstab"), "path is not a clean absolute path"),
    "tunable outside the kernel": (_set(SWAP, "path", "/etc/shadow"), "a tunable must be under /proc/sys or /sys"),
    "tunable path relative": (_set(SWAP, "path", "proc/sys/vm/swappiness"), "path is not a clean absolute path"),
    "before as a number": (_set(SWAP, "before", 60), "before has the wrong type (int)"),
    "restore unlike before": (_set(SWAP, "restore", "0\n"), "restore '0\\n' does not match before '60\\n'"),
    "missing path": (lambda d: d["entries"][0].pop("path") and "entries[0]: ", "missing path"),
    "unknown kind": (_set(SWAP, "kind", "shell"), "kind must be tunable, file, mount or pci-driver"),
    "unknown field": (_set(SWAP, "command", "rm -rf /"), "unknown field command"),
    "entry is a list": (lambda d: d["entries"].__setitem__(0, ["kind", "tunable"]) or "entries[0]: ",
                        "kind must be tunable, file, mount or pci-driver"),
    "two entries for one path": (lambda d: d["entries"].append(dict(d["entries"][0])) or "",
                                 "a second entry for the same path"),
    "created dir outside": (_set("/etc/sysctl.d/90-virtscenario.conf", "created_dirs", ["/"]),
                            "created_dirs[0] must be '/etc/sysctl.d'"),
    "journal dirs elsewhere": (lambda d: d.__setitem__("created_dirs", ["/usr"]) or "journal: ",
                               "created_dirs[0] must be '/var/lib/virtscenario'"),
    "entries not a list": (lambda d: d.__setitem__("entries", {"0": 1}) or "journal: ",
                           "entries has the wrong type (dict)"),
    "unknown state": (lambda d: d.__setitem__("state", "done") or "", "state 'done' is not one of"),
    "version 1": (lambda d: d.__setitem__("version", 1) or "", "version 1 (this virtscenario reads version 2)"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
@pytest.mark.parametrize("reseal", [True, False], ids=["checksum-updated", "checksum-stale"])
def test_damaged_journal_restores_nothing_and_names_the_entry(run_cli, applied, name, reseal):
    host, _original = applied
    damage, message = DAMAGE[name]
    doc = _doc(host)
    where = damage(doc)
    _write(host, doc, reseal=reseal)
    _refused_everywhere(run_cli, host, f"{where}{message}")


@pytest.mark.parametrize("text, message", [
    ("", "not JSON"),
    ('{"format": "virtscenario-host-journal", "version": 2, "entr', "not JSON"),  # torn write
    ("[" * 100000 + "]" * 100000, "not JSON (nested too deeply)"),
    ('{"version": NaN}', "not JSON (NaN is not JSON)"),
    ("[]", "journal: not an object"),
    ('{"format": "virtscenario-host-journal"}', "journal: missing version, root, state"),
])
def test_journal_that_is_not_a_journal_is_refused(run_cli, applied, text, message):
    host, _original = applied
    (host.root / JOURNAL).write_text(text)
    _refused_everywhere(run_cli, host, message)


def test_journal_not_utf8_is_refused(run_cli, applied):
    host, _original = applied
    (host.root / JOURNAL).write_bytes(b'{"format": "\xff"}')
    _refused_everywhere(run_cli, host, "not JSON")


def test_changed_value_with_a_stale_checksum_is_refused(run_cli, applied):
    """Damage the schema cannot see (a plausible value): only the checksum catches it."""
    host, _original = applied
    doc = _doc(host)
    entry = doc["entries"][_index(doc, SWAP)]
    entry["before"] = entry["restore"] = "61\n"
    _write(host, doc, reseal=False)
    _refused_everywhere(run_cli, host, "the checksum does not match the content (damaged, or edited by hand)")


def test_fstab_is_never_truncated_by_a_damaged_entry(run_cli, applied):
    """The issue's case: undecodable saved content made revert write an empty /etc/fstab and succeed."""
    host, _original = applied
    fstab = (host.root / "etc/fstab").read_bytes()
    doc = _doc(host)
    doc["entries"][_index(doc, FSTAB)]["before_b64"] = "%%%"
    _write(host, doc, reseal=True)
    assert _cli(run_cli, host, "revert", "--yes").exit_code == 1
    assert (host.root / "etc/fstab").read_bytes() == fstab != b""


def test_a_valid_journal_still_reverts_after_the_refusals(run_cli, applied):
    host, original = applied
    saved = (host.root / JOURNAL).read_bytes()
    doc = _doc(host)
    doc["entries"][_index(doc, FSTAB)]["mode"] = -1
    _write(host, doc, reseal=True)
    assert _cli(run_cli, host, "revert", "--yes").exit_code == 1
    (host.root / JOURNAL).write_bytes(saved)  # the administrator puts the good copy back
    result = _cli(run_cli, host, "revert", "--yes")
    assert result.exit_code == 0, result.output
    assert fakehost.diff(original, fakehost.snapshot(host.root)) == []


def test_journal_of_another_tree_is_refused(run_cli, applied, make_host):
    """A journal that reached another tree (copied, shared through a bind mount) restores nothing there."""
    host, _original = applied
    other = make_host(fakehost.amd_sev(swappiness="10\n"))
    (other.root / "var/lib/virtscenario").mkdir(parents=True)
    shutil.copy2(host.root / JOURNAL, other.root / JOURNAL)
    _refused_everywhere(run_cli, other, "it was written for another tree (device ")
    assert (other.root / "proc/sys/vm/swappiness").read_text() == "10\n"


def test_base64_round_trip_of_binary_file_content(run_cli, make_host):
    """A file that is not UTF-8 (a hand-edited fstab in Latin-1) keeps every byte through apply and revert."""
    host = make_host(fakehost.amd_sev())
    (host.root / "etc/fstab").write_bytes(b"# caf\xe9\nUUID=1 / ext4 defaults 0 1\n")
    original = fakehost.snapshot(host.root)
    assert _cli(run_cli, host, "apply", "tcomp", "--yes", "--persist").exit_code == 0
    text = (host.root / "etc/fstab").read_bytes()
    assert text.startswith(b"# caf\xe9\nUUID=1 / ext4 defaults 0 1\n") and b"hugetlbfs /dev/hugepages" in text
    entry = next(e for e in _doc(host)["entries"] if e["path"] == FSTAB)
    assert base64.b64decode(entry["before_b64"]) == b"# caf\xe9\nUUID=1 / ext4 defaults 0 1\n"
    assert _cli(run_cli, host, "revert", "--yes").exit_code == 0
    assert fakehost.diff(original, fakehost.snapshot(host.root)) == []
