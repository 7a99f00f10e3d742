"""The CLI contract: create/store, --print-xml and --dry-run write nothing, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from lxml import etree
from virtscenario.cli.app import cli, main
from virtscenario.vm.store import atomic_write

from ..conftest import make_pm
from . import demo_plugin


@pytest.fixture
def run(run_cli):
    return run_cli(make_pm(("demo", demo_plugin)))


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} \
        if path.exists() else {}


def test_create_writes_store_and_reports(run, tmp_path):
    code, out, err = run("create", "demo", "--name", "web", "--output", str(tmp_path), "--disk", "none")
    assert code == 0, err
    vm = tmp_path / "web"
    assert "Created web (scenario demo 1.2) in" in out and f"{vm}/: domain.xml, vm.yaml" in out
    assert "sound.model" in out and "demo decides sound.model" in out
    record = yaml.safe_load((vm / "vm.yaml").read_text())
    assert record["scenario"] == "demo" and record["scenario_version"] == "1.2"
    root = etree.parse(str(vm / "domain.xml")).getroot()
    assert root.findtext("uuid") == record["uuid"]
    assert root.find("devices/interface/mac").get("address") == record["macs"][0]
    cache = {s["key"]: s for s in record["settings"]}["sound.model"]
    assert cache["source"].startswith("scenario demo")
    assert (vm / "share").is_dir()
    assert oct((vm / "domain.xml").stat().st_mode & 0o777) == "0o600"  # private, whatever the umask


def test_existing_vm_needs_force_and_keeps_identity(run, tmp_path):
    args = ("create", "demo", "--name", "web", "--output", str(tmp_path), "--disk", "none")
    assert run(*args)[0] == 0
    before = tree(tmp_path)
    code, out, err = run(*args, "--vcpus", "2")
    assert code == 1 and err.startswith("Error: VM 'web' already exists") and len(err.splitlines()) == 1
    assert tree(tmp_path) == before  # refused create leaves it untouched
    record = yaml.safe_load((tmp_path / "web/vm.yaml").read_text())
    assert run(*args, "--vcpus", "2", "--force")[0] == 0
    again = yaml.safe_load((tmp_path / "web/vm.yaml").read_text())
    assert (again["uuid"], again["macs"]) == (record["uuid"], record["macs"])
    assert etree.parse(str(tmp_path / "web/domain.xml")).getroot().findtext("vcpu") == "2"


def test_print_xml_and_dry_run_write_nothing(run, tmp_path):
    code, out, err = run("create", "demo", "--name", "web", "--output", str(tmp_path), "--print-xml")
    assert code == 0, err
    assert out.startswith('<domain type="kvm">') and etree.fromstring(out.encode()).findtext("name") == "web"
    assert not tmp_path.joinpath("web").exists() and list(tmp_path.iterdir()) == []
    code, out, err = run("create", "demo", "--name", "web", "--output", str(tmp_path), "--dry-run",
                         "--define", "--disk", "size=3", "--set", "disk.preallocation=metadata")
    assert code == 0, err
    assert f"Would write {tmp_path / 'web' / 'domain.xml'}" in out
    assert f"Would create image {tmp_path / 'web' / 'web.qcow2'}: qcow2, 3221225472 bytes" in out
    assert "preallocation=metadata" in out and "Would define web on qemu:///system" in out
    assert list(tmp_path.iterdir()) == []


def test_create_makes_images_with_qemu_img(run, tmp_path):
    code, out, err = run("create", "demo", "--name", "img", "--output", str(tmp_path), "--disk", "size=1",
                         "--disk", "size=512M,format=raw", "--set", "disk.cluster_size=128K",
                         "--set", "disk.lazy_refcounts=on")
    assert code == 0, err
    from virtscenario.vm.images import image_info
    qcow = image_info(str(tmp_path / "img/img.qcow2"))
    assert qcow["virtual-size"] == 2**30 and qcow["cluster-size"] == 128 * 1024
    assert qcow["format-specific"]["data"]["lazy-refcounts"] is True
    raw = image_info(str(tmp_path / "img/img-1.raw"))
    assert raw["format"] == "raw" and raw["virtual-size"] == 512 * 2**20
    assert "disk.cluster_size=128KiB has no effect here" in err and "img-1.raw is a raw image" in err


BAD = [
    (["create", "demo", "--name", "a/b"], "must not contain '/'"),
    (["create", "demo", "--name", "x", "--memory", "lots"], "is not a size"),
    (["create", "demo", "--name", "x", "--memory", "16E"], "unknown unit"),
    (["create", "demo", "--name", "x", "--vcpus", "0"], "below the minimum 1"),
    (["create", "demo", "--name", "x", "--vcpus", "5000"], "above the maximum 4096"),
    (["create", "demo", "--name", "x", "--set", "disk.cahce=none"], "did you mean 'disk.cache'"),
    (["create", "demo", "--name", "x", "--set", "vm.vcpus=two"], "expected an integer"),
    (["create", "demo", "--name", "x", "--config", "/nonexistent.yaml"], "does not exist"),
    (["create", "demo", "--name", "x", "--disk", "size=abc"], "is not a size"),
    (["create", "demo", "--name", "x", "--disk", "sise=3"], "did you mean 'size'"),
    (["create", "demo", "--name", "x", "--disk", "path=/nonexistent.qcow2"], "no such file"),
    (["create", "demo", "--name", "x", "--network", "bridge=br0,mac=zz"], "is not a MAC address"),
    (["create", "demo", "--name", "x", "--network", "wifi=yes"], "unknown option 'wifi'"),
    (["create", "demo", "--name", "x", "--cdrom", "/nonexistent.iso"], "no such file"),
    (["create", "demo", "--name", "x", "--connect", "bogus:///nowhere"], "cannot connect to bogus:///nowhere"),
    (["create", "nosuch", "--name", "x"], "unknown scenario 'nosuch'"),
    (["create", "demo", "--name", "x", "--disk", "none", "--disk", "size=1"], "cannot be combined"),
    (["scenarios", "show", "dem"], "did you mean 'demo'"),
    (["validate", "/nonexistent.xml"], "no such file"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a[2:5]) for a, _ in BAD])
def test_bad_input_one_line_nonzero_nothing_written(run, tmp_path, args, message):
    if args[0] == "create":
        args = [*args, "--output", str(tmp_path / "store")]
    code, out, err = run(*args)
    assert code == 1, (out, err)
    assert err.startswith("Error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "store").exists()


def test_usage_errors_exit_2(run):
    code, _out, err = run("create", "demo")
    assert code == 2 and "Missing option '--name'" in err
    code, _out, err = run("create", "demo", "--name", "x", "--set", "novalue")
    assert code == 2 and "is not KEY=VALUE" in err


def test_debug_shows_traceback(run):
    with pytest.raises(Exception, match="unknown scenario"):
        main(["--debug", "create", "nosuch", "--name", "x"])


def test_scenarios_show_json_and_markdown(run):
    code, out, _ = run("scenarios", "show", "demo", "--json", "--set", "vm.vcpus=3")
    data = json.loads(out)
    assert code == 0 and data["scenario"] == "demo"
    by_key = {s["key"]: s for s in data["settings"]}
    assert set(by_key["vm.vcpus"]) == {"key", "value", "layer", "origin", "source", "rationale", "reference", "shown"}
    assert by_key["vm.vcpus"]["shown"] is True and by_key["clock.kvmclock"]["shown"] is False  # unset default
    assert (by_key["vm.vcpus"]["layer"], by_key["vm.vcpus"]["origin"]) == ("flag", "--set vm.vcpus")
    assert by_key["vm.vcpus"]["value"] == 3 and by_key["vm.vcpus"]["source"] == "flag --set vm.vcpus"
    code, out, _ = run("scenarios", "show", "demo", "--format", "markdown")
    assert out.startswith("## demo 1.2") and "| key | value | source | rationale | reference |" in out
    assert "| sound.model | ich9 | scenario demo (demo) | demo decides sound.model |" in out


def test_validate_command(run, tmp_path):
    good = tmp_path / "good.xml"
    run("create", "demo", "--name", "v", "--output", str(tmp_path / "s"), "--disk", "none")
    good.write_bytes((tmp_path / "s/v/domain.xml").read_bytes())
    code, out, _ = run("validate", str(good))
    assert code == 0 and "valid against" in out
    bad = tmp_path / "bad.xml"
    bad.write_text("<domain type='kvm'><name>x</name><memory>1</memory><os><type>hvm</type></os><devices/>"
                   "<bogus/></domain>")
    code, _, err = run("validate", str(bad))
    assert code == 1 and "/domain/bogus: element is not valid there" in err
    bad.write_text("<domain")
    code, _, err = run("validate", str(bad))
    assert code == 1 and "not well-formed XML" in err


def test_shell_completion_lists_scenarios(run, monkeypatch):
    monkeypatch.setenv("_VIRTSCENARIO_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "virtscenario create de")
    monkeypatch.setenv("COMP_CWORD", "2")
    result = CliRunner().invoke(cli, [], prog_name="virtscenario", complete_var="_VIRTSCENARIO_COMPLETE")
    assert result.output.splitlines() == ["plain,demo"]  # bash_complete: type,value per line


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "domain.xml"
    atomic_write(target, b"old")

    def boom(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["domain.xml"]  # no temp file left behind


def test_exit_codes_from_commands_are_kept(use_pm, capsys):
    import click
    from virtscenario.api import hookimpl

    class Cmd:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("fails")
            @click.pass_context
            def fails(ctx):
                ctx.exit(3)

    use_pm(make_pm(("cmd", Cmd())))
    with pytest.raises(SystemExit) as info:
        main(["fails"])
    assert info.value.code == 3
