"""Issue 9, a hostile local user and hostile input: symlinks in the store, untrusted stores and settings
files, YAML bombs, unbounded values, odd names and bytes, failures that used to be 'internal error'."""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from .conftest import cli, one_error_line, snapshot

NOBODY = 65534


# -- symlinks: nothing in the store is followed ------------------------------------------------------
def test_symlinked_vm_directory_is_refused(run, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    store = tmp_path / "store"
    store.mkdir(mode=0o711)
    (store / "v").symlink_to(outside)
    code, _out, err = run("create", "desktop", "--name", "v", "--output", str(store), "--disk", "size=64M")
    assert code == 1
    assert one_error_line(err) == (f"Error: {store / 'v'} is a symbolic link: refusing to follow it (nothing in "
                                   "the store is followed through a symlink)")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("target_exists", [False, True], ids=["dangling", "existing file"])
def test_symlinked_image_path_is_refused(run, tmp_path, target_exists):
    """qemu-img used to create through a dangling link; an existing outside file was used as the disk."""
    args = ("create", "desktop", "--name", "i", "--output", str(tmp_path / "store"), "--disk", "none")
    assert run(*args)[0] == 0
    target = tmp_path / "elsewhere.qcow2"
    if target_exists:
        target.write_bytes(b"someone else's data")
    (tmp_path / "store" / "i" / "i.qcow2").symlink_to(target)
    before = snapshot(tmp_path)
    code, _out, err = run(*args[:-2], "--disk", "size=64M", "--force")
    assert code == 1
    assert one_error_line(err) == (f"Error: image {tmp_path / 'store' / 'i' / 'i.qcow2'} is a symbolic link: "
                                   "refusing to use what it points to (remove it)")
    assert snapshot(tmp_path) == before
    assert target.exists() == target_exists


def test_symlinked_share_is_refused(run, tmp_path):
    """A 'share' link to /etc used to expose /etc to the guest."""
    args = ("create", "desktop", "--name", "sh", "--output", str(tmp_path / "store"), "--disk", "none")
    assert run(*args)[0] == 0
    share = tmp_path / "store" / "sh" / "share"
    share.rmdir()
    secret_dir = tmp_path / "etc"
    secret_dir.mkdir()
    share.symlink_to(secret_dir)
    code, _out, err = run(*args, "--force")
    assert code == 1
    assert one_error_line(err) == (f"Error: share directory {share} is a symbolic link: refusing to share what it "
                                   "points to with the guest (remove it)")


@pytest.mark.parametrize("what", ["vm.yaml", "current", "gen"])
def test_foreign_links_inside_the_vm_are_refused(run, tmp_path, what):
    args = ("create", "desktop", "--name", "l", "--output", str(tmp_path / "store"), "--disk", "none")
    assert run(*args)[0] == 0
    vm = tmp_path / "store" / "l"
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "vm.yaml").write_text("name: l\nuuid: 11111111-2222-4333-8444-555555555555\n")
    if what == "vm.yaml":
        (vm / "vm.yaml").unlink()
        (vm / "vm.yaml").symlink_to(fake / "vm.yaml")
    elif what == "current":
        (vm / "current").unlink()
        (vm / "current").symlink_to(fake)
    else:
        os.rename(vm / "gen-1", vm / "gen-1.real")
        (vm / "gen-1").symlink_to(fake)
    code, _out, err = run("show", "l", "--output", str(tmp_path / "store"))
    assert code == 1
    line = one_error_line(err)
    assert "refusing to follow it" in line and str(vm) in line, line
    assert run(*args, "--force")[0] == 1


def test_symlinked_lock_directory_is_refused(run, tmp_path):
    store = tmp_path / "store"
    store.mkdir(mode=0o711)
    elsewhere = tmp_path / "locks"
    elsewhere.mkdir()
    (store / ".locks").symlink_to(elsewhere)
    code, _out, err = run("create", "desktop", "--name", "k", "--output", str(store), "--disk", "none")
    assert code == 1 and "is a symbolic link: refusing to follow it" in one_error_line(err)
    assert list(elsewhere.iterdir()) == []


# -- untrusted stores and settings files -------------------------------------------------------------
def test_store_owned_by_another_user_is_refused(run, tmp_path):
    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    os.chown(store, NOBODY, NOBODY)
    code, _out, err = run("create", "desktop", "--name", "x", "--output", str(store), "--disk", "none")
    assert code == 1
    assert one_error_line(err) == (f"Error: store {store}: {store} belongs to uid {NOBODY}, not to you or root: "
                                   "refusing to use it (its owner could swap what is inside)")
    assert list(store.iterdir()) == []
    code, _out, err = run("list", "--output", str(store))
    assert code == 1 and f"belongs to uid {NOBODY}" in err


@pytest.mark.parametrize("where", ["root", "parent"])
def test_group_or_world_writable_store_is_refused(run, tmp_path, where):
    parent = tmp_path / "p"
    store = parent / "store"
    store.mkdir(parents=True, mode=0o711)
    (store if where == "root" else parent).chmod(0o777)
    code, _out, err = run("create", "desktop", "--name", "x", "--output", str(store), "--disk", "none")
    assert code == 1
    shown = store if where == "root" else parent
    assert one_error_line(err) == (f"Error: store {store}: {shown} is writable by its group or others (mode 0777): "
                                   f"refusing to use it (chmod go-w {shown})")


def test_sticky_world_writable_parent_is_fine(run, tmp_path):
    """Like /tmp: others cannot rename what is not theirs in a sticky directory."""
    parent = tmp_path / "tmp"
    parent.mkdir()
    parent.chmod(0o1777)
    code, _out, err = run("create", "desktop", "--name", "x", "--output", str(parent / "store"), "--disk", "none")
    assert code == 0, err


def test_settings_file_of_another_user_is_refused(run, tmp_path, monkeypatch):
    """As root, a ./virtscenario.yaml of another user moved the store, shared /etc and opened VNC."""
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "virtscenario.yaml"
    evil.write_text(f"store: {tmp_path / 'evil'}\nsettings:\n  filesystem.source_dir: /etc\n"
                    "  graphics.listen: 0.0.0.0\n")
    os.chown(evil, NOBODY, NOBODY)
    code, _out, err = run("create", "desktop", "--name", "x", "--disk", "none")
    assert code == 1
    assert one_error_line(err) == (f"Error: settings file virtscenario.yaml belongs to uid {NOBODY}, not to you or "
                                   "root: refusing to use it (another user could redirect the store or expose host "
                                   "files)")
    assert not (tmp_path / "evil").exists()
    os.chown(evil, 0, 0)
    evil.chmod(0o666)
    code, _out, err = run("scenarios", "show", "desktop")
    assert code == 1 and "is writable by its group or others (mode 0666)" in one_error_line(err)


def test_what_is_checked_is_what_is_read(tmp_path, monkeypatch):
    """Another user flipping a symlink between a good file and theirs once won 18 runs in 150: the
    check looked the path up, the read looked it up again. Here the flip happens at the worst
    moment, as the file is opened: the file read is the file checked, and it is refused."""
    from virtscenario import safefiles
    from virtscenario.errors import ConfigError
    from virtscenario.settings.userfile import load_config

    good, evil = tmp_path / "good.yaml", tmp_path / "evil.yaml"
    good.write_text("settings:\n  vm.vcpus: 2\n")
    evil.write_text(f"store: {tmp_path / 'evil-store'}\n")
    os.chown(evil, NOBODY, NOBODY)
    link = tmp_path / "virtscenario.yaml"
    link.symlink_to(good)
    real_open = os.open

    def flipping_open(path, flags, *args, **kwargs):
        if str(path) == str(link):
            link.unlink()
            link.symlink_to(evil)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(safefiles.os, "open", flipping_open)
    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}, not to you or root"):
        load_config(str(link))


# -- YAML bombs and unbounded values -----------------------------------------------------------------
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + \
    "settings:\n  vm.title: *i\n"


@pytest.mark.parametrize("argv", [["create", "desktop", "--name", "b", "--disk", "none", "--dry-run"],
                                  ["scenarios", "show", "desktop"], ["host", "plan", "desktop"]],
                         ids=["create", "scenarios show", "host plan"])
def test_yaml_alias_bomb_is_refused_at_once(tmp_path, argv):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 600
    started = time.monotonic()
    result = cli(*argv, "--config", str(bomb), timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (f"Error: settings file {bomb} line 1: YAML anchors and aliases "
                                             "(&name, *name) are not allowed")


def test_huge_settings_file_and_long_values_are_bounded(run, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("settings:\n  vm.title: '" + "t" * (2 * 1024 * 1024) + "'\n")
    started = time.monotonic()
    code, _out, err = run("create", "desktop", "--name", "x", "--config", str(big), "--dry-run")
    assert code == 1 and f"settings file {big} is {big.stat().st_size} bytes; the limit is 1048576" in err
    code, _out, err = run("create", "desktop", "--name", "x", "--set", "vm.title=" + "t" * 50_000, "--dry-run")
    line = one_error_line(err)
    assert code == 1 and "4096" in line and len(line) < 300, line
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("number", [".inf", "-.inf", "1.0e+400", ".nan"])
@pytest.mark.parametrize("key", ["vm.vcpus", "cpu.iothreads", "host.swappiness", "disk.size"])
def test_numbers_yaml_cannot_hold_in_an_integer_are_refused(run, tmp_path, key, number):
    config = tmp_path / "x.yaml"
    config.write_text(f"settings:\n  {key}: {number}\n")
    code, _out, err = run("scenarios", "show", "desktop", "--config", str(config))
    assert code == 1
    assert one_error_line(err).startswith(f"Error: setting '{key}' in {config}: expected "), err


@pytest.mark.parametrize(("field", "value"), [("memory_bytes", ".inf"), ("memory.hugepage_size", ".inf"),
                                              ("memory.hugepage_size", "[1, 2]"), ("host.swappiness", "{a: 1}")])
def test_a_damaged_record_is_refused_in_one_line(tmp_path, field, value):
    """A hand-edited vm.yaml is read back by host plan --vm: its values are checked where it is read."""
    from virtscenario.sdk.fakehost import make_fake_host
    host = make_fake_host(tmp_path / "host")
    store = tmp_path / "store"
    made = cli("--host-root", str(host.root), "create", "computation", "--name", "d", "--output", str(store),
               "--disk", "none")
    assert made.returncode == 0, made.stderr
    record = store / "d" / "vm.yaml"
    lines = record.read_text().splitlines()
    if field == "memory_bytes":
        lines = [f"memory_bytes: {value}" if line.startswith("memory_bytes:") else line for line in lines]
    else:  # the value line after '- key: FIELD' (in host_requirements and in settings)
        lines = [f"  value: {value}" if i and lines[i - 1] == f"- key: {field}" and line.startswith("  value:")
                 else line for i, line in enumerate(lines)]
    assert f"{value}" in "\n".join(lines)
    target = record.resolve()  # the generation's own file (vm.yaml is reached through 'current')
    target.write_text("\n".join(lines) + "\n")
    result = cli("--host-root", str(host.root), "host", "plan", "computation", "--vm", "d", "--output", str(store))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"Error: {store / 'd' / 'vm.yaml'}: ") and "damaged record" in line, line


def test_duplicate_keys_are_refused(run, tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("settings:\n  vm.vcpus: 2\n  vm.vcpus: 64\n")
    code, _out, err = run("create", "desktop", "--name", "x", "--config", str(dup), "--dry-run")
    assert code == 1 and "key 'vm.vcpus' appears twice" in one_error_line(err)


@pytest.mark.parametrize("args, message", [
    (["--memory", "99999999TiB"], "above the maximum 4096TiB"),
    (["--memory", "4097TiB"], "above the maximum 4096TiB"),
    (["--vcpus", "4097"], "above the maximum 4096"),
    (["--vcpus", "9" * 5000], "expected an integer"),
    (["--disk", "size=2049TiB"], "above qcow2's limit of 2048TiB with 64KiB clusters"),
    (["--disk", "size=129G", "--set", "disk.cluster_size=512B"], "above qcow2's limit of 128GiB with 512B"),
    (["--disk", "size=1", "--set", "disk.cluster_size=3K"], "a power of two from 512 bytes to 2 MiB"),
    (["--disk", "size=1", "--set", "disk.cluster_size=4M"], "4MiB is above the maximum 2MiB"),
    (["--disk", "size=99999999999T"], "above the maximum"),
    (["--set", "disk.luks_iter_time=600000"], "above the maximum 60000"),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_sizes_and_counts_are_bounded(run, tmp_path, args, message):
    code, _out, err = run("create", "desktop", "--name", "x", "--output", str(tmp_path / "s"), *args)
    assert code == 1 and message in one_error_line(err), err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name, code_point", [("a\u009bb", "U+009B"), ("a\u202eb", "U+202E"),
                                              ("a\u200bb", "U+200B"), ("a\udcffb", None)])
def test_names_with_controls_invisibles_or_bad_bytes_are_refused(run, tmp_path, name, code_point):
    code, _out, err = run("create", "desktop", "--name", name, "--output", str(tmp_path / "s"))
    assert code == 1
    line = one_error_line(err)
    assert (code_point in line) if code_point else "is not valid UTF-8" in line, line
    assert not (tmp_path / "s").exists()


def test_invalid_utf8_argv_from_a_real_process_is_one_line(tmp_path):
    for args in ([b"--name", b"x\xff"], [b"--name", b"x", b"--output", bytes(tmp_path) + b"/s\xff"],
                 [b"--name", b"x", b"--set", b"vm.title=\xfe"]):
        from .conftest import CLI
        result = subprocess.run([CLI.encode(), b"create", b"desktop", *args, b"--disk", b"none"],
                                capture_output=True, timeout=60)
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 1 and "is not valid UTF-8" in one_error_line(err), err
    assert list(tmp_path.iterdir()) == []


# -- failures name what failed and where ------------------------------------------------------------
@pytest.mark.parametrize("failing, err_no, expected", [
    ("mkdir", errno.EROFS, "cannot create directory {vm_stage}: Read-only file system"),
    ("mkdir", errno.ENOSPC, "cannot create directory {vm_stage}: No space left on device"),
    ("write", errno.ENOSPC, "cannot write {vm_stage}/gen-1/domain.xml: No space left on device"),
    ("rename", errno.EIO, "cannot write {vm_stage}/gen-1/domain.xml: Input/output error"),
    ("symlink", errno.EDQUOT, "cannot switch {vm_stage}/current: Disk quota exceeded"),
])
def test_filesystem_failures_are_one_line_naming_the_path(run, tmp_path, monkeypatch, failing, err_no, expected):
    import virtscenario.vm.fsutil as fsutil
    real = getattr(os, failing)

    def broken(*args, **kwargs):
        name = str(args[0] if failing != "symlink" else args[1])
        if failing == "write" or ".new-" in name or "gen-" in name or name.startswith(".current") or \
                name.startswith(".domain.xml"):
            raise OSError(err_no, os.strerror(err_no))
        return real(*args, **kwargs)

    monkeypatch.setattr(fsutil.os, failing, broken)
    store = tmp_path / "s"
    store.mkdir(mode=0o711)
    code, _out, err = run("create", "desktop", "--name", "f", "--output", str(store), "--disk", "none")
    assert code == 1
    line = one_error_line(err)
    stage = next((p for p in [*store.iterdir()] if p.name.startswith(".new-")), None)
    assert stage is None, "the staging directory must be removed after a failure"
    prefix = f"Error: {expected.split('{vm_stage}')[0]}{store}/.new-f."
    assert line.startswith(prefix) and line.endswith(expected.split("{vm_stage}")[1]), line
    assert [p.name for p in store.iterdir()] == [".locks"]


def test_stdout_that_cannot_be_written_is_exit_1_after_the_vm_is_written(tmp_path):
    with open("/dev/full", "w") as full:
        result = cli("create", "desktop", "--name", "o", "--output", str(tmp_path), "--disk", "none", stdout=full,
                     stderr=subprocess.PIPE)
    err = result.stderr
    assert result.returncode == 1
    assert one_error_line(err) == "Error: cannot write to standard output: No space left on device"
    assert (tmp_path / "o" / "vm.yaml").is_file() and (tmp_path / "o" / "domain.xml").is_file()


def test_define_gives_qemus_group_search_permission_only(run, tmp_path):
    """QEMU running as its own user (Debian: libvirt-qemu) must reach the images in the 0700 directory."""
    from virtscenario.vm.libvirt import grant_qemu_search

    class Conn:
        def __init__(self, label: str) -> None:
            self.label = label

        def getCapabilities(self) -> str:  # noqa: N802 - libvirt's name
            return (f"<capabilities><host><secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>{self.label}"
                    f"</baselabel><baselabel type='qemu'>{self.label}</baselabel></secmodel></host></capabilities>")

    args = ("create", "desktop", "--name", "q", "--output", str(tmp_path), "--disk", "none")
    assert run(*args)[0] == 0
    vm = tmp_path / "q"
    grant_qemu_search(Conn("+0:+0"), "qemu", vm)  # QEMU runs as root: nothing to grant
    assert oct(vm.stat().st_mode & 0o777) == "0o700"
    grant_qemu_search(Conn(f"+{NOBODY}:+{NOBODY - 1}"), "qemu", vm)
    assert oct(vm.stat().st_mode & 0o777) == "0o710" and vm.stat().st_gid == NOBODY - 1
    assert run(*args, "--force")[0] == 0  # a later --force keeps that search bit, nothing more
    assert oct(vm.stat().st_mode & 0o777) == "0o710"
