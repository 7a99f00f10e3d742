"""Passphrases of encrypted images: the VM's key file, ``--passphrase-file``, and handing them to qemu-img.

Rules (docs/store.md):

* A VM's random key is ``<store>/<name>/disk.secret`` (0600). It is created once, before
  the first image that uses it, and never regenerated while the VM exists: later images
  of the VM reuse it.
* ``--passphrase-file FILE``: the passphrase is the file's bytes, exactly (no newline is
  stripped), at most 1024 bytes. That is what ``qemu-img --object secret,file=FILE``,
  ``virsh secret-set-value --plain --file FILE`` and ``cryptsetup --key-file FILE`` read,
  so the same file works with each of them. It is never copied into the store.
* qemu-img receives a passphrase through a pipe (``secret,file=/dev/fd/N``): no
  passphrase is ever on argv or in a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Iterator

from ..errors import ConfigError

KEY_FILE = "disk.secret"
#: Where a disk's passphrase comes from, as vm.yaml records it.
FROM_KEY_FILE = "disk.secret"
FROM_PASSPHRASE_FILE = "passphrase-file"
#: virsh secret-set-value --file reads at most 1024 bytes (virFileReadAll(filename, 1024, ...)).
MAX_PASSPHRASE = 1024


def read_passphrase_file(path: str) -> bytes:
    """The passphrase of ``--passphrase-file``: the file's bytes, exactly."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read --passphrase-file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"--passphrase-file {path} is not a regular file")
        data = os.read(fd, MAX_PASSPHRASE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read --passphrase-file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if not data:
        raise ConfigError(f"--passphrase-file {path} is empty")
    if len(data) > MAX_PASSPHRASE:
        raise ConfigError(f"--passphrase-file {path} is longer than {MAX_PASSPHRASE} bytes (the most "
                          "'virsh secret-set-value --file' reads)")
    return data


def new_key() -> bytes:
    """A random key: 43 URL-safe characters (256 bits), printable so 'virsh secret-set-value --plain' takes it."""
    import secrets
    return secrets.token_urlsafe(32).encode()


@contextlib.contextmanager
def secret_pipe(passphrase: bytes) -> Iterator[int]:
    """Yield the read end of a pipe holding ``passphrase`` (for ``pass_fds`` and ``file=/dev/fd/N``).

    A pipe is read once: one per qemu-img run. The passphrase (at most 1024 bytes, or our
    43-byte key) fits a pipe buffer, so the write never blocks.
    """
    r, w = os.pipe()
    try:
        try:
            os.write(w, passphrase)
        finally:
            os.close(w)
        yield r
    finally:
        os.close(r)
