"""hosts check: every host at once over real transports; a dead or hung host never hides or delays the others."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
from virtscenario.fleet.check import check_hosts
from virtscenario.fleet.inventory import Host

from .conftest import UNREACHABLE_URI, node_uri

pytestmark = pytest.mark.libvirtd
TIMEOUT = 3.0


def test_all_hosts_concurrently_each_with_its_own_timeout(tcp_uri: str, ssh_uri: str, hung_uri: str) -> None:
    hosts = [Host("tcp", tcp_uri), Host("ssh", ssh_uri), Host("epyc", node_uri("node-epyc.xml")),
             Host("xeon", node_uri("node-xeon.xml")), Host("dead", UNREACHABLE_URI), Host("hung", hung_uri)]
    t0 = time.monotonic()
    results = check_hosts(hosts, TIMEOUT)
    total = time.monotonic() - t0
    by = {r.host.name: r for r in results}
    assert [r.host.name for r in results] == [h.name for h in hosts]
    for name in ("tcp", "ssh", "epyc", "xeon"):
        assert by[name].ok, by[name].error
    assert "Connection refused" in (by["dead"].error or "")
    assert by["hung"].error == f"no answer within {TIMEOUT:g} s (while connecting)"
    # The hung host costs its own timeout once, not once per host; the others answer as fast as alone.
    assert TIMEOUT <= total < TIMEOUT + 1.5, total
    assert by["dead"].elapsed < 1.0
    alone = check_hosts([Host("tcp", tcp_uri)], TIMEOUT)[0]
    assert by["tcp"].elapsed < alone.elapsed + 1.0
    # tcp and ssh reach the same daemon: the same host, the same answers
    assert by["tcp"].facts and by["ssh"].facts
    assert by["tcp"].facts.caps.host_uuid == by["ssh"].facts.caps.host_uuid
    assert by["tcp"].facts.hypervisor_version == by["ssh"].facts.hypervisor_version
    print(f"\nhosts check of {len(hosts)} hosts: {total:.2f} s; " +
          ", ".join(f"{r.host.name} {r.elapsed:.3f} s" for r in results))


def test_cli_check_prints_every_host_then_fails(fleet_cli: Callable[..., tuple[int, str, str]],
                                               write_inventory: Callable[..., Path], tcp_uri: str) -> None:
    inv = write_inventory({"tcp": {"uri": tcp_uri, "labels": ["local"]}, "epyc": node_uri("node-epyc.xml"),
                           "dead": UNREACHABLE_URI})
    code, out, err = fleet_cli("hosts", "check", "--hosts", str(inv), "--timeout", "5")
    assert code == 1
    assert err.strip().splitlines() == ["Error: 1 of 3 host(s) failed: dead"]
    assert "tcp  " + tcp_uri + "  [ok" in out
    assert "epyc  " in out and "domain capabilities: none (this function is not supported" in out
    assert f"dead  {UNREACHABLE_URI}  [FAILED after" in out and "Connection refused" in out
    code, out, err = fleet_cli("hosts", "check", "--hosts", str(inv), "--json", "tcp", "epyc")
    assert code == 0, err
    data = json.loads(out)
    assert [d["name"] for d in data] == ["tcp", "epyc"]
    tcp = data[0]
    assert tcp["reachable"] and tcp["labels"] == ["local"] and tcp["error"] is None
    for key in ("libvirt_version", "hypervisor_version", "arch", "cpu_model", "numa_nodes", "accel",
                "launch_security", "firmware", "virtiofs", "tpm", "running_domains"):
        assert key in tcp["facts"]
    assert all("free_hugepages" in n and "free_bytes" in n for n in tcp["facts"]["numa_nodes"])
    assert data[1]["facts"]["domcaps_error"].startswith("this function is not supported")


def test_cli_list(fleet_cli: Callable[..., tuple[int, str, str]], write_inventory: Callable[..., Path]) -> None:
    inv = write_inventory({"a": {"uri": "qemu+ssh://root@a/system", "labels": ["sev", "nvme"]},
                           "b": "qemu+tls://b/system"})
    code, out, _err = fleet_cli("hosts", "list", "--hosts", str(inv), "--json")
    assert code == 0
    assert json.loads(out) == [{"name": "a", "uri": "qemu+ssh://root@a/system", "labels": ["sev", "nvme"]},
                               {"name": "b", "uri": "qemu+tls://b/system", "labels": []}]
    code, out, _err = fleet_cli("hosts", "list", "--hosts", str(inv))
    assert out.splitlines()[1].split() == ["a", "qemu+ssh://root@a/system", "sev,", "nvme"]
    bad = inv.parent / "bad.yaml"
    bad.write_text("hosts:\n  a: {uri: 'qemu+ssh://a/system', lables: [x]}\n")
    code, out, err = fleet_cli("hosts", "list", "--hosts", str(bad))
    assert code == 1 and out == ""
    assert err.strip() == f"Error: {bad}: host 'a': unknown key 'lables'; did you mean 'labels'?"
