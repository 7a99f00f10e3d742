"""Helpers for the store tests: the real CLI in-process and as a process, and qemu-img verdicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from ..scenarios.support import plugin_manager

QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
CLI = str(Path(sys.executable).with_name("virtscenario"))
#: LUKS key derivation of 10 ms instead of qemu-img's 2000: these tests open images many times.
FAST_LUKS = ("--set", "disk.luks_iter_time=10")


@pytest.fixture
def run(run_cli: Callable[..., Any]) -> Callable[..., tuple[int, str, str]]:
    return run_cli(plugin_manager())  # type: ignore[no-any-return]


def cli(*args: str, env: Optional[dict[str, str]] = None, timeout: int = 300, **kw: Any) -> subprocess.CompletedProcess:
    """The installed console script, as a separate process."""
    if "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    return subprocess.run([CLI, *args], text=True, timeout=timeout,
                          env=env or dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), check=False, **kw)


def opens(image: Path, key: bytes, tmp: Path) -> Optional[str]:
    """None when qemu-img opens (and checks) ``image`` with ``key``; else qemu-img's complaint."""
    keyfile = tmp / f".key-{os.getpid()}-{abs(hash(key))}"
    keyfile.write_bytes(key)
    keyfile.chmod(0o600)
    try:
        esc = str(image).replace(",", ",,")
        result = subprocess.run([QEMU_IMG, "check", "-q", "--object",
                                 f"secret,id=k,file={str(keyfile).replace(',', ',,')}", "--image-opts",
                                 f"driver=qcow2,file.filename={esc},encrypt.key-secret=k"],
                                capture_output=True, text=True, check=False)
    finally:
        keyfile.unlink()
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()


def info(image: Path) -> dict[str, Any]:
    out = subprocess.run([QEMU_IMG, "info", "--output=json", "-U", str(image)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def snapshot(path: Path) -> dict[str, Any]:
    """Every entry under ``path`` (not following symlinks): bytes of files, targets of links, dirs.
    The lock directory is left out: taking a lock writes the holder's pid into it."""
    out: dict[str, Any] = {}
    if not path.exists():
        return out
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if rel == ".locks" or rel.startswith(".locks/"):
            continue
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", oct(p.stat().st_mode & 0o7777))
        else:
            out[rel] = ("file", p.read_bytes() if p.stat().st_size < 1 << 20 else p.stat().st_mtime_ns)
    return out


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]
