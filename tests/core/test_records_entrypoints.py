"""The cheap dataclass bases and the entry-point scanner that keep start-up fast."""

from __future__ import annotations

import dataclasses
import sys
import zipfile

import pytest
from virtscenario.domain.model import Disk, Domain
from virtscenario.plugin.discovery import entry_points
from virtscenario.types import Choice, Note


def test_records_behave_like_dataclasses():
    disk = Disk("vda", source="/x.qcow2")
    assert disk == Disk(target="vda", source="/x.qcow2") and disk != Disk("vdb")
    assert repr(disk).startswith("Disk(target='vda', source='/x.qcow2', type='file'")
    assert [f.name for f in dataclasses.fields(Disk)][:3] == ["target", "source", "type"]
    assert dataclasses.asdict(disk)["cache"] is None
    dom1, dom2 = Domain("a", "u"), Domain("a", "u")
    dom1.devices.disks.append(disk)
    assert dom2.devices.disks == []  # default_factory gives each instance its own list
    with pytest.raises(TypeError, match="unhashable"):
        hash(disk)
    with pytest.raises(TypeError, match="missing required argument 'target'"):
        Disk()
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Disk("vda", nope=1)
    with pytest.raises(TypeError, match="multiple values for argument 'target'"):
        Disk("vda", target="vdb")


def test_frozen_records():
    note = Note("info", "hello")
    assert note == Note("info", "hello", "core") and hash(note) == hash(Note("info", "hello"))
    assert {note, Note("info", "hello")} == {note}
    with pytest.raises(dataclasses.FrozenInstanceError):
        note.message = "changed"  # type: ignore[misc]
    assert dataclasses.replace(note, level="warning").level == "warning"
    with pytest.raises(ValueError, match="rationale and a reference"):  # __post_init__ still runs
        Choice("disk.cache", "none", "", "")


def write_dist(site, dirname, name, version, entry_points_txt, meta="METADATA"):
    info = site / dirname
    info.mkdir()
    (info / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody: Name: ignored\n")
    if entry_points_txt is not None:
        (info / "entry_points.txt").write_text(entry_points_txt)


def test_scanner_reads_dist_info_and_egg_info(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write_dist(first, "my_plugin-1.0.dist-info", "my-plugin", "1.0",
               "# comment\n[console_scripts]\nx = y:z\n[virtscenario]\nmine = my_plugin.hooks:plugin\n\n")
    write_dist(first, "other-2.0.egg-info", "other", "2.0", "[virtscenario]\nother = other_mod\n", meta="PKG-INFO")
    write_dist(first, "nothing-1.0.dist-info", "nothing", "1.0", None)
    write_dist(second, "My.Plugin-9.0.dist-info", "My.Plugin", "9.0", "[virtscenario]\nshadowed = x\n")
    eps = entry_points("virtscenario", [str(first), str(second), str(tmp_path / "missing")])
    assert [(e.name, e.value, e.dist_name, e.dist_version) for e in eps] == [
        ("mine", "my_plugin.hooks:plugin", "my-plugin", "1.0"), ("other", "other_mod", "other", "2.0")]


def test_scanner_loads_objects(tmp_path, monkeypatch):
    (tmp_path / "ep_mod.py").write_text("class Holder:\n    inner = 42\n")
    write_dist(tmp_path, "ep_mod-1.0.dist-info", "ep-mod", "1.0", "[virtscenario]\nx = ep_mod:Holder.inner\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    [ep] = entry_points("virtscenario", [str(tmp_path)])
    assert ep.load() == 42


def test_zip_on_path_falls_back_to_importlib(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped_plugin-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped-plugin\n"
                                                          "Version: 1.0\n")
        zf.writestr("zipped_plugin-1.0.dist-info/entry_points.txt", "[virtscenario]\nzipped = zipped_mod\n")
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    names = {(e.name, e.dist_name) for e in entry_points("virtscenario")}
    assert ("zipped", "zipped-plugin") in names
    assert ("core_rules", "virtscenario") in names
