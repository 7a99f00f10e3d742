"""The per-user validation cache: only valid documents, masked identity, trusted file, and a hit
really skips compiling the schema (checked in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from virtscenario.domain import validcache
from virtscenario.domain.validate import DEFAULT_SCHEMA
from virtscenario.errors import ValidationError

SCHEMA = Path(DEFAULT_SCHEMA)
DOC = (b'<domain type="kvm"><name>v</name><uuid>0b6c2a56-4d61-4c1e-9b57-5a1f43a1c0de</uuid>'
       b'<memory>1</memory><devices><interface type="user"><mac address="52:54:00:12:34:56"/></interface>'
       b'</devices></domain>')


def test_key_masks_identity_but_not_content():
    same = DOC.replace(b"0b6c2a56", b"ffffffff").replace(b"12:34:56", b"ab:cd:ef")
    assert validcache.key(SCHEMA, DOC) == validcache.key(SCHEMA, same)
    assert validcache.key(SCHEMA, DOC) != validcache.key(SCHEMA, DOC.replace(b"<name>v<", b"<name>w<"))
    # A MAC outside libvirt's 52:54:00 range is part of the content.
    other = DOC.replace(b"52:54:00:12:34:56", b"02:00:00:12:34:56")
    assert validcache.key(SCHEMA, DOC) != validcache.key(SCHEMA, other)


def test_remember_and_trust_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    k = validcache.key(SCHEMA, DOC)
    assert not validcache.known_valid(k)
    validcache.remember(k)
    path = tmp_path / "virtscenario" / validcache.FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert validcache.known_valid(k)
    path.chmod(0o666)  # anyone could have written it: not trusted
    assert not validcache.known_valid(k)
    path.chmod(0o600)
    monkeypatch.setenv("VIRTSCENARIO_NO_CACHE", "1")
    assert not validcache.known_valid(k)


def test_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for i in range(validcache.MAX_ENTRIES + 20):
        validcache.remember(f"{i:064x}")
    text = (tmp_path / "virtscenario" / validcache.FILE).read_text().split()
    assert len(text) == validcache.MAX_ENTRIES and text[-1] == f"{validcache.MAX_ENTRIES + 19:064x}"


PROBE = """
import json, sys
from virtscenario.cli.app import main
from virtscenario.domain import validate
try:
    main(["create", "desktop", "--name", sys.argv[1], "--print-xml"] + sys.argv[2:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.write(json.dumps({"code": code, "compiled": validate._load.cache_info().currsize}) + "\\n")
"""


def probe(env: dict[str, str], name: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, name, *args], env=env, capture_output=True, text=True,
                         check=False)
    return json.loads(out.stderr.strip().splitlines()[-1])


def test_a_second_run_skips_the_schema_and_an_invalid_document_never_hits(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "c"),
           "XDG_DATA_HOME": str(tmp_path / "d")}
    first = probe(env, "cached")
    assert first == {"code": 0, "compiled": 1}
    again = probe(env, "cached")  # new uuid and MACs, same structure
    assert again == {"code": 0, "compiled": 0}
    other = probe(env, "cached", "--vcpus", "3")  # different content: validated for real
    assert other == {"code": 0, "compiled": 1}


def test_an_invalid_document_is_never_remembered(tmp_path, monkeypatch):
    from lxml import etree
    from virtscenario.domain import validate
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    validate._load.cache_clear()  # as in a fresh process: the cache is consulted first
    bad = DOC.replace(b"<memory>1</memory>", b"<memory>lots</memory>")
    with pytest.raises(ValidationError):
        validate.validate_tree(etree.fromstring(bad), document=bad)
    assert not (tmp_path / "virtscenario" / validcache.FILE).exists()
