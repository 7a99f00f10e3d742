"""Disk images with qemu-img: made under a temporary name, checked, then renamed into place.

* A new image is created as ``.<name>.part-XXXX`` (0600, O_EXCL, never through a symlink)
  next to its final path, checked with ``qemu-img info`` (format, size, encryption) and
  ``qemu-img check`` (a LUKS image is opened with its passphrase), fsynced, and only then
  renamed to its final name. A crash leaves at worst a ``.part`` file, never a half-made
  image under the final name.
* An existing image is reused only when ``qemu-img info`` and ``check`` confirm the plan:
  format, size, encryption, and that it opens with the passphrase the VM records.
* Passphrases reach qemu-img through a pipe (:func:`keys.secret_pipe`), never argv or a file.
* Paths inside QEMU option strings have their commas doubled (QEMU's escaping).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from ..errors import VirtscenarioError
from .fsutil import PRIVATE_FILE, StoreError, failed, fsync_fd, rename_noreplace, token
from .keys import new_key, secret_pipe

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.model import ImagePlan

Run = Callable[..., "subprocess.CompletedProcess[str]"]
Progress = Optional[Callable[[str], None]]

#: qemu-img fails LUKS creation at random when its PBKDF benchmark measures 0 ms of thread CPU time:
#: with tick-based CPU accounting (CONFIG_TICK_CPU_ACCOUNTING, 4 ms ticks) that was 6 runs in 12 on the
#: CI machine. A failed attempt takes milliseconds, so retry until a failure rate of 1/2 does not matter.
LUKS_RETRIES = 20
FLAKY_LUKS = "Unable to get accurate CPU usage"
PART = ".part-"


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if not path:
        raise VirtscenarioError("qemu-img not found (Debian: apt install qemu-utils; SUSE: zypper install "
                                "qemu-tools; Fedora: dnf install qemu-img)")
    return path


def qemu_opt(value: str) -> str:
    """A value inside a QEMU option string (``a=b,c=d``): commas are doubled."""
    return value.replace(",", ",,")


def run_qemu_img(command: str, args: Sequence[str], passphrase: Optional[bytes] = None,
                 run: Run = subprocess.run, image: str = "") -> subprocess.CompletedProcess[str]:
    """``qemu-img COMMAND [--object secret,id=sec0,file=/dev/fd/N] ARGS``; the secret travels in a pipe."""
    argv = [qemu_img(), command]
    try:
        if passphrase is None:
            return run([*argv, *args], capture_output=True, text=True, check=False)
        with secret_pipe(passphrase) as fd:
            return run([*argv, "--object", f"secret,id=sec0,file=/dev/fd/{fd}", *args], capture_output=True,
                       text=True, check=False, pass_fds=(fd,))
    except OSError as exc:
        on = f" on {image}" if image else ""
        raise VirtscenarioError(f"cannot run qemu-img {command}{on}: {exc.strerror or exc}") from None


def message(result: subprocess.CompletedProcess[str]) -> str:
    """qemu-img's last error line, without the echo of the option string it could not open."""
    lines = [line for line in (result.stderr or result.stdout or "").strip().splitlines() if line.strip()]
    if not lines:
        return f"exit status {result.returncode}"
    text = next((line for line in lines if "Could not open" in line), lines[-1])
    if "Could not open '" in text and "': " in text:
        text = text.rsplit("': ", 1)[1]
    return text.removeprefix("qemu-img: ")[:300]


def create_image(plan: ImagePlan, passphrase: Optional[bytes] = None, run: Run = subprocess.run,
                 progress: Progress = None, at: Optional[str] = None) -> None:
    """Create ``plan.path`` (or ``at``, where the store stages it): temporary name, check, rename."""
    final = Path(at or plan.path)
    if plan.encrypt and not passphrase:
        raise VirtscenarioError("an encrypted image needs a passphrase")
    try:
        dir_fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise failed(exc, "open directory", final.parent) from None
    tmp = f".{final.name}{PART}{token()}"
    tmp_path = final.parent / tmp
    try:
        if os.path.lexists(final):
            raise StoreError(f"image {final} already exists; refusing to overwrite it")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE,
                         dir_fd=dir_fd)
            os.fchmod(fd, PRIVATE_FILE)
            os.close(fd)
        except OSError as exc:
            raise failed(exc, "create", tmp_path) from None
        try:
            enc = " LUKS-encrypted" if plan.encrypt else ""
            if progress:
                what = f"overlay on {plan.backing}" if plan.backing else f"{plan.size} bytes"
                progress(f"Creating{enc} {plan.format} image {plan.path} ({what})")  # the user's path, not the stage
            _qemu_img_create(plan, tmp_path, passphrase, run)
            _private(dir_fd, tmp, tmp_path)
            if progress:
                progress(f"Checking image {plan.path}" + (" (opening it with its passphrase)" if plan.encrypt else ""))
            problem = mismatch(str(tmp_path), plan.format, plan.size, plan.encrypt, run, plan.backing)
            if problem:
                raise VirtscenarioError(f"qemu-img made {final} wrong: {problem}")
            error = check_image(str(tmp_path), plan.format, passphrase if plan.encrypt else None, run)
            if error:
                raise VirtscenarioError(f"new image {final} fails qemu-img check: {error}")
            _fsync_file(dir_fd, tmp, tmp_path)
            rename_noreplace(tmp, final.name, dir_fd, dir_fd, final)
            fsync_fd(dir_fd, final.parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
    finally:
        os.close(dir_fd)


def _qemu_img_create(plan: ImagePlan, path: Path, passphrase: Optional[bytes], run: Run) -> None:
    opts = list(plan.options)
    if plan.encrypt:
        opts += ["encrypt.format=luks", "encrypt.key-secret=sec0"]
    # The file exists (ours, 0600): qemu-img writes into it and keeps its mode.
    # An overlay records its base's format (-F): libvirt then follows the chain without probing,
    # which it refuses for a backing file of unknown format. Size 0: the base's size.
    backing = ["-b", plan.backing, "-F", plan.backing_format or "raw"] if plan.backing else []
    size = [str(plan.size)] if plan.size or not plan.backing else []
    args = ["-q", "-f", plan.format, *backing, *(["-o", ",".join(opts)] if opts else []), str(path), *size]
    tries = LUKS_RETRIES if plan.encrypt else 1
    for attempt in range(1, tries + 1):
        result = run_qemu_img("create", args, passphrase if plan.encrypt else None, run, str(path))
        if result.returncode == 0:
            return
        text = message(result)
        if FLAKY_LUKS in text and attempt < tries:
            time.sleep(0.01 * attempt)
            continue
        raise VirtscenarioError(f"qemu-img create {plan.path} failed: {text}")


def _private(dir_fd: int, name: str, shown: Path) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.fchmod(fd, PRIVATE_FILE)
        finally:
            os.close(fd)
    except OSError as exc:
        raise failed(exc, "set the mode of", shown) from None


def _fsync_file(dir_fd: int, name: str, shown: Path) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise failed(exc, "sync", shown) from None


def image_info(path: str, run: Run = subprocess.run) -> dict:
    result = run_qemu_img("info", ["--output=json", "-U", path], run=run, image=path)
    if result.returncode != 0:
        raise VirtscenarioError(f"cannot read image {path}: {message(result)}")
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise VirtscenarioError(f"cannot read image {path}: qemu-img info printed no JSON") from None
    return data if isinstance(data, dict) else {}


def _round(size: int) -> int:
    return -(-size // 512) * 512  # qemu-img rounds sizes up to whole sectors


def mismatch(path: str, fmt: str, size: int, encrypt: bool, run: Run = subprocess.run,
             backing: Optional[str] = None) -> Optional[str]:
    """What in ``qemu-img info`` differs from the plan (format, virtual size, LUKS, backing file), or None."""
    from ..units import format_size
    info = image_info(path, run)
    found = str(info.get("format"))
    if found != fmt:
        return f"it is a {found} image, the plan says {fmt}"
    if backing is not None and info.get("backing-filename") != backing:
        return f"its backing file is {info.get('backing-filename')}, the plan says {backing}"
    actual = int(info.get("virtual-size") or 0)
    if (size or backing is None) and actual not in (size, _round(size)):
        return f"it is {format_size(actual)}, the plan says {format_size(size)}"
    encrypted = bool(info.get("encrypted"))
    luks = ((info.get("format-specific") or {}).get("data") or {}).get("encrypt", {}).get("format") == "luks"
    if encrypt and not (encrypted and luks):
        return "it is not LUKS-encrypted, but disk.encryption is on"
    if encrypted and not encrypt:
        return "it is LUKS-encrypted, but disk.encryption is off (the VM would not boot without its secret)"
    return None


def check_image(path: str, fmt: str, passphrase: Optional[bytes], run: Run = subprocess.run) -> Optional[str]:
    """``qemu-img check`` (qcow2; opening a LUKS image with ``passphrase``): None when fine, else why not.

    An image a running VM holds is checked shared (``-U``): then only that it opens counts,
    since its metadata changes under the check.
    """
    if fmt != "qcow2":
        return None  # raw has no metadata to check; info already confirmed format and size
    opts = f"driver=qcow2,file.filename={qemu_opt(path)}" + (",encrypt.key-secret=sec0" if passphrase else "")
    result = run_qemu_img("check", ["-q", "--image-opts", opts], passphrase, run, path)
    if result.returncode == 0:
        return None
    text = message(result)
    if result.returncode == 1 and "lock" in text:
        result = run_qemu_img("check", ["-q", "-U", "--image-opts", opts], passphrase, run, path)
        return None if result.returncode in (0, 2, 3) else message(result)
    if result.returncode == 3:
        return f"leaked clusters (repair: qemu-img check -r leaks {path})"
    if result.returncode == 2:
        return "the image is corrupted"
    return text


def new_passphrase() -> bytes:
    """Kept for API compatibility: see :func:`keys.new_key`."""
    return new_key()
