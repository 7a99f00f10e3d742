"""Disk images with qemu-img: options adapted to the format, secrets never on argv."""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import VirtscenarioError

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.model import ImagePlan

LUKS_RETRIES = 5
#: qemu-img 7.2 fails LUKS creation now and then on fast machines (QEMU bug, pbkdf benchmark).
FLAKY_LUKS = "Unable to get accurate CPU usage"


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if not path:
        raise VirtscenarioError("qemu-img not found (Debian: apt install qemu-utils; SUSE: zypper install "
                                "qemu-tools; Fedora: dnf install qemu-img)")
    return path


def create_image(plan: ImagePlan, passphrase: Optional[bytes] = None,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """Create ``plan.path``; with a passphrase, LUKS via a 0600 secret file, retried on QEMU's flaky benchmark."""
    path, size, opts = Path(plan.path), plan.size, plan
    if path.exists():
        raise VirtscenarioError(f"image {path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [qemu_img(), "create", "-q", "-f", opts.format]
    secret_file = None
    try:
        o = list(opts.options)
        if opts.encrypt:
            if not passphrase:
                raise VirtscenarioError("an encrypted image needs a passphrase")
            fd, secret_file = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
                handle.write(passphrase)
            argv += ["--object", f"secret,id=sec0,file={secret_file}"]
            o += ["encrypt.format=luks", "encrypt.key-secret=sec0"]
        if o:
            argv += ["-o", ",".join(o)]
        argv += [str(path), str(size)]
        tries = LUKS_RETRIES if opts.encrypt else 1
        for attempt in range(1, tries + 1):
            result = run(argv, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return
            err = (result.stderr or result.stdout).strip().splitlines()
            message = err[-1] if err else f"exit status {result.returncode}"
            if path.exists():
                path.unlink()
            if FLAKY_LUKS in message and attempt < tries:
                time.sleep(0.05 * attempt)
                continue
            raise VirtscenarioError(f"qemu-img create {path} failed: {message}")
    finally:
        if secret_file:
            os.unlink(secret_file)


def image_info(path: str) -> dict:
    try:
        result = subprocess.run([qemu_img(), "info", "--output=json", "-U", path],
                                capture_output=True, text=True, check=False)
    except OSError as exc:
        raise VirtscenarioError(f"cannot run qemu-img: {exc}") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise VirtscenarioError(f"cannot read image {path}: {lines[-1] if lines else 'qemu-img info failed'}")
    return json.loads(result.stdout)


def new_passphrase() -> bytes:
    return pysecrets.token_urlsafe(32).encode()


def create_overlay(plan: ImagePlan, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """Create the qcow2 overlay ``plan.path`` on ``plan.backing``, which is only ever read.

    The backing format is recorded in the overlay's header (``-F``): libvirt then follows the
    chain without probing, which it refuses for a backing file of unknown format. Made under a
    temporary name in the same directory and renamed when complete, mode 0600: a crash never
    leaves a half-made image under the final name.
    """
    path = Path(plan.path)
    if path.exists():
        raise VirtscenarioError(f"image {path} already exists; refusing to overwrite it")
    if not plan.backing or not plan.backing_format:
        raise VirtscenarioError(f"overlay {path}: no backing file or format")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    argv = [qemu_img(), "create", "-q", "-f", "qcow2", "-b", plan.backing, "-F", plan.backing_format]
    if plan.options:
        argv += ["-o", ",".join(plan.options)]
    argv.append(tmp)
    if plan.size:
        argv.append(str(plan.size))
    try:
        result = run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            err = (result.stderr or result.stdout).strip().splitlines()
            raise VirtscenarioError(f"qemu-img create {path} (overlay on {plan.backing}) failed: "
                                    f"{err[-1] if err else f'exit status {result.returncode}'}")
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if path.exists():  # created meanwhile by someone else: keep theirs
            raise VirtscenarioError(f"image {path} already exists; refusing to overwrite it")
        os.rename(tmp, path)
        tmp = ""
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
