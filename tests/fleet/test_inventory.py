"""hosts.yaml and upstream virthosts.yaml: every bad input is one ConfigError line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from virtscenario.errors import ConfigError
from virtscenario.fleet.inventory import MAX_BYTES, load_inventory, parse_inventory, resolve_uris
from virtscenario.fleet.uri import parse_uri

GOOD = """\
hosts:
  epyc1:
    uri: qemu+ssh://root@epyc1.example.org/system?keyfile=/root/.ssh/fleet&no_tty=1
    labels: [sev, nvme]
  xeon2: {uri: "qemu+tls://xeon2.example.org:16514/system"}
  local: {uri: "qemu:///system"}
"""


def test_our_format() -> None:
    inv = parse_inventory(GOOD, "hosts.yaml")
    assert inv.names() == ["epyc1", "xeon2", "local"]
    assert inv.get("epyc1").labels == ("sev", "nvme")
    assert not inv.upstream
    epyc = inv.get("epyc1").parsed
    assert (epyc.driver, epyc.transport, epyc.user, epyc.host, epyc.path) == \
        ("qemu", "ssh", "root", "epyc1.example.org", "/system")
    assert dict(epyc.params) == {"keyfile": "/root/.ssh/fleet", "no_tty": "1"}
    assert inv.get("xeon2").parsed.port == 16514
    assert inv.get("local").parsed.local and inv.get("epyc1").parsed.remote


def test_upstream_virthosts_yaml(tmp_path: Path) -> None:
    cert = tmp_path / "linux-5540.pdh"
    cert.write_bytes(b"PDH")
    text = f"---\nlocalhost:\n  url: qemu:///system\nlinux-5540:\n  url: qemu+ssh://linux-5540/system\n" \
           f"  sev-cert: {cert}\n"
    inv = parse_inventory(text, "virthosts.yaml")
    assert inv.upstream
    assert [(h.name, h.uri, h.sev_cert) for h in inv.hosts] == [
        ("localhost", "qemu:///system", None), ("linux-5540", "qemu+ssh://linux-5540/system", str(cert))]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("- a\n- b\n", "expected a mapping at the top level, got a list"),
    ("host:\n  a: {uri: 'qemu:///system'}\n", "unknown top-level key 'host'; did you mean 'hosts'?"),
    ("hosts:\n  a: {uri: 'qemu:///system', label: [x]}\n", "unknown key 'label'; did you mean 'labels'?"),
    ("hosts:\n  a: {url: 'qemu:///system'}\n", "unknown key 'url'; did you mean 'uri'?"),
    ("hosts:\n  a: {labels: [x]}\n", "'uri' is missing"),
    ("hosts:\n  a: qemu:///system\n", "expected {uri: qemu:///system}, not a bare string"),
    ("hosts:\n  a: {uri: 42}\n", "'uri' must be a string"),
    ("hosts:\n  a: {uri: 'qemu:///system'}\n  a: {uri: 'qemu+ssh://h/system'}\n",
     "line 3: duplicate key 'a' (first on line 2)"),
    ("hosts:\n  a: {uri: 'qemu:///system', uri: 'qemu:///session'}\n", "duplicate key 'uri'"),
    ("hosts:\n  a: {uri: 'qemu+ssh://h/system'}\n  b: {uri: 'qemu+ssh://h/system'}\n",
     "hosts 'a' and 'b' have the same uri"),
    ("hosts:\n  -bad: {uri: 'qemu:///system'}\n", "host name '-bad' must be"),
    ("hosts:\n  a: {uri: 'qemu:///system', labels: sev}\n", "'labels' must be a list"),
    ("hosts:\n  a: {uri: 'qemu:///system', labels: [sev, sev]}\n", "label 'sev' is listed twice"),
    ("hosts:\n  a: {uri: 'qemu:///system', labels: ['has space']}\n", "label 'has space' must be a word"),
    ("hosts: [a, b]\n", "'hosts' must map host names"),
    ("hosts:\n  a: {uri: 'qemu:///system'\n", "not valid YAML"),
    ("localhost:\n  url: qemu:///system\n  sev_cert: /x\n", "unknown key 'sev_cert'; did you mean 'sev-cert'?"),
    ("localhost:\n  url: ''\n", "'url' is missing or empty"),
    ("localhost:\n  url: qemu:///system\n  sev-cert: /nonexistent/pdh\n", "sev-cert '/nonexistent/pdh' is not a file"),
    ("localhost: {url: qemu:///system}\nlocalhost: {url: qemu:///session}\n", "duplicate key 'localhost'"),
])
def test_bad_inventories_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_inventory(text, "hosts.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("hosts.yaml")


@pytest.mark.parametrize("uri, message", [
    ("epyc1", "expected driver[+transport]://"),
    ("qemu+sssh://h/system", "unknown transport 'sssh'; did you mean 'ssh'?"),
    ("xen://h/", "driver 'xen' is not a hypervisor virtscenario places VMs on"),
    ("qemu+ssh://h/sytem", "the QEMU driver's path is /system or /session or /embed, not '/sytem'"),
    ("qemu+ssh://h", "not an empty path"),
    ("qemu+tcp://h:99999/system", "out of range"),
    ("qemu+tcp://h:port/system", "Port could not be cast"),
    ("qemu+ssh://h/system?keyfle=/k", "unknown parameter 'keyfle' (did you mean 'keyfile'?)"),
    ("qemu+ssh://h/system?no_verify=yes", "no_verify must be 0 or 1"),
    ("qemu+ssh://h/system?keyfile", "the query is not key=value"),
    ("qemu+ssh://h/system#x", "'#fragment'"),
    ("qemu+unix://h/system", "the unix transport reaches the local daemon"),
    ("qemu+ssh://h /system", "spaces or control characters"),
    ("qemu:///embed", "needs ?root=DIR"),
    ("test://h", "the test driver's path"),
])
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_uri(uri, "hosts.yaml: host 'a'")
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_password_in_uri_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as err:
        parse_inventory("hosts:\n  a: {uri: 'qemu+ssh://root:hunter2@h/system'}\n", "hosts.yaml")
    assert "must not hold a password" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("uri", [
    "qemu:///system", "qemu:///session", "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/tmp/k&no_verify=1",
    "qemu+tcp://127.0.0.1/system", "qemu+tls://[2001:db8::1]:16514/system", "qemu+libssh://u@h/system?known_hosts=/k",
    "qemu+unix:///system?socket=/run/libvirt/libvirt-sock", "qemu:///embed?root=/var/tmp/x", "test:///default",
    "test:///srv/node.xml", "qemu+ext:///system?command=/bin/true",
])
def test_good_uris(uri: str) -> None:
    assert parse_uri(uri).text == uri


def test_search_order_and_explicit_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with pytest.raises(ConfigError, match="no host inventory: write one at .*cfg/virtscenario/hosts.yaml"):
        load_inventory(None)
    xdg = tmp_path / "cfg" / "virtscenario" / "hosts.yaml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text(GOOD)
    assert load_inventory(None).path == str(xdg)
    other = tmp_path / "other.yaml"
    other.write_text("hosts:\n  one: {uri: 'qemu:///system'}\n")
    assert load_inventory(str(other)).names() == ["one"]
    with pytest.raises(ConfigError, match="--hosts .*missing.yaml: no such file"):
        load_inventory(str(tmp_path / "missing.yaml"))


def test_an_inventory_others_could_write_is_refused(tmp_path: Path) -> None:
    # It names the hypervisors create, place and delete connect to: trusted like a settings file.
    shared = tmp_path / "hosts.yaml"
    shared.write_text("hosts:\n  one: {uri: 'qemu:///system'}\n")
    shared.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by its group or others"):
        load_inventory(str(shared))
    shared.chmod(0o644)
    os.chown(shared, 65534, 65534)  # nobody's
    with pytest.raises(ConfigError, match="belongs to uid 65534, not to you or root"):
        load_inventory(str(shared))


def test_size_bound_and_encoding(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("hosts:\n" + "#" * (MAX_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml is \d+ bytes; the limit is 1048576"):
        load_inventory(str(big))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"hosts:\n  caf\xe9: {uri: 'qemu:///system'}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_inventory(str(latin))


def test_resolve_names_and_uris() -> None:
    inv = parse_inventory(GOOD, "hosts.yaml")
    assert inv.resolve("xeon2").uri == "qemu+tls://xeon2.example.org:16514/system"
    assert inv.resolve("qemu:///system").name == "local"  # a listed URI is that host
    assert inv.resolve("qemu+tcp://other/system").name == "qemu+tcp://other/system"
    with pytest.raises(ConfigError, match="no host 'xeon' in hosts.yaml; did you mean 'xeon2'"):
        inv.resolve("xeon")
    with pytest.raises(ConfigError, match="is not a libvirt URI"):
        inv.resolve("qemu+bogus://x/system")


def test_resolve_uris_for_migration_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    assert resolve_uris(["qemu+ssh://a/system", "qemu+ssh://b/system"]) == ["qemu+ssh://a/system",
                                                                            "qemu+ssh://b/system"]
    inv = tmp_path / "hosts.yaml"
    inv.write_text(GOOD)
    assert resolve_uris(["epyc1", "qemu:///session"], str(inv)) == [
        "qemu+ssh://root@epyc1.example.org/system?keyfile=/root/.ssh/fleet&no_tty=1", "qemu:///session"]
    with pytest.raises(ConfigError, match="no host inventory"):
        resolve_uris(["epyc1"])
