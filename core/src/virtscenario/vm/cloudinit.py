"""``--cloud-init``: a NoCloud seed ISO (volume label ``cidata``) for cloud images.

``--cloud-init ssh-key=FILE[,user=NAME][,hostname=NAME][,user-data=FILE][,meta-data=FILE][,network-config=FILE]``.
Planned by :func:`plan_seed` while the VM is generated (files read and checked, nothing
written), written by :func:`write_seed` into ``<store>/<name>/cidata.iso`` and attached as a
read-only CD-ROM. cloud-init's NoCloud datasource finds it by its label and reads
``user-data``, ``meta-data`` and ``network-config`` from its root.

The default user-data creates one user with the SSH key, a locked password and sudo, and
nothing else: no password ever lands in the store. A user-data FILE is copied as is, so a
clear-text password in it is refused (:func:`clear_passwords`): it would sit in the store's
seed and on a CD-ROM anyone in the guest can read, and a crypt hash does the same job. The
cloud-config is parsed as YAML (bounded, as the settings files) and walked; text that is not
YAML (a shell script, MIME multi-part) is only searched for password keys, which can be a false
positive, so a match there is a warning. The ISO is made by ``xorrisofs`` (else
``genisoimage``, else ``mkisofs``) with the options virt-install uses for its own
``--cloud-init`` seed (virt-manager ``virtinst/install/installerinject.py``): xorriso is the
maintained one of the three, packaged by every distribution, so no Python ISO writer is needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..records import FrozenRecord, frozen_record

NOCLOUD_DOC = "https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html"
SEED_FILE = "cidata.iso"
LABEL = "cidata"
OPTIONS = ("ssh-key", "user", "hostname", "user-data", "meta-data", "network-config")
#: virt-install's order: xorriso is maintained; the other two are older mkisofs forks.
ISO_TOOLS = ("xorrisofs", "genisoimage", "mkisofs")
MAX_FILE_BYTES = 1024 * 1024  # a seed file is a few KiB; this bounds what is read into memory
KEY_TYPES = re.compile(r"^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)"
                       r"@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
#: cloud-config keys whose value is a password (``passwd``, ``hashed_passwd``: meant to be a hash;
#: cloud-init cc_set_passwords, cc_users_groups, cc_rh_subscription).
PASSWORD_KEYS = ("password", "plain_text_passwd", "passwd")
#: A crypt(3) hash ($id$salt$hash: $1$ MD5, $5$/$6$ SHA-2, $2b$ bcrypt, $y$ yescrypt...) is no password in clear.
CRYPT_HASH = re.compile(r"^\$[0-9A-Za-z]{1,6}\$[^\s:]*\$[^\s:]+$")
#: For user-data that is not YAML: a password key anywhere on a line (block or flow style).
CLEAR_PASSWORD = re.compile(r"(?<![\w-])(password|plain_text_passwd|passwd|chpasswd)\s*:")


@frozen_record
class SeedFile(FrozenRecord):
    name: str  # user-data, meta-data, network-config
    data: bytes
    origin: str  # "generated" or the path it was copied from


@frozen_record
class SeedPlan(FrozenRecord):
    """What goes into the seed ISO, and where it goes."""

    path: str
    files: tuple[SeedFile, ...]
    user: Optional[str]  # the user the default user-data creates (None: the user's own user-data)
    hostname: str
    warnings: tuple[str, ...] = ()

    def file(self, name: str) -> Optional[SeedFile]:
        return next((f for f in self.files if f.name == name), None)


def default_user() -> str:
    """The name of whoever runs virtscenario (the sudo caller under sudo); ``cloud`` for plain root."""
    import getpass
    import os
    name = os.environ.get("SUDO_USER") or getpass.getuser()
    return name if name != "root" and USER_NAME.match(name) else "cloud"


def parse_cloud_init(text: str) -> dict[str, str]:
    from ..errors import ConfigError
    from ..settings.cliargs import option_pairs
    opts = option_pairs(text, OPTIONS, "--cloud-init")
    if "ssh-key" not in opts and "user-data" not in opts:
        raise ConfigError(f"--cloud-init {text[:80]!r}: give ssh-key=FILE (a public key for the default user), "
                          "or user-data=FILE")
    if "ssh-key" in opts and "user-data" in opts:
        raise ConfigError(f"--cloud-init {text[:80]!r}: ssh-key= and user= only shape the default user-data; "
                          "with user-data=FILE put the key in that file")
    if "user" in opts and "ssh-key" not in opts:
        raise ConfigError(f"--cloud-init {text[:80]!r}: user= names the user of the default user-data, which "
                          "needs ssh-key=FILE")
    if "user" in opts and not USER_NAME.match(opts["user"]):
        raise ConfigError(f"--cloud-init user={opts['user'][:40]!r}: not a valid user name (lower case letters, "
                          "digits, '_' and '-', at most 32)")
    if "hostname" in opts and not HOST_NAME.match(opts["hostname"]):
        raise ConfigError(f"--cloud-init hostname={opts['hostname'][:60]!r}: not a valid host name")
    return opts


def _read(option: str, path: str) -> bytes:
    from ..errors import ConfigError
    p = Path(path).expanduser()
    try:
        if not p.is_file():
            raise ConfigError(f"--cloud-init {option}={path}: no such file")
        with open(p, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--cloud-init {option}={path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"--cloud-init {option}={path}: larger than {MAX_FILE_BYTES} bytes")
    return data


def public_keys(path: str) -> list[str]:
    """The public keys in ``path`` (authorized_keys syntax); a private key is refused."""
    from ..errors import ConfigError
    raw = _read("ssh-key", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--cloud-init ssh-key={path}: not a text file") from None
    if "PRIVATE KEY" in text:
        raise ConfigError(f"--cloud-init ssh-key={path}: this is a private key; give the public one "
                          f"({path}.pub): the seed would copy it into the store and the guest")
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    bad = [k for k in keys if not KEY_TYPES.match(k)]
    if not keys or bad:
        raise ConfigError(f"--cloud-init ssh-key={path}: not an OpenSSH public key (ssh-ed25519 AAAA..., "
                          "ssh-rsa AAAA..., ecdsa-sha2-nistp256 AAAA...)")
    return keys


def default_user_data(user: str, keys: list[str]) -> bytes:
    """The user with the keys, a locked password and sudo (the password is locked, so sudo cannot ask
    for one), and nothing else: no packages, no commands."""
    import yaml
    data = {"users": [{"name": user, "lock_passwd": True, "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL",
                       "ssh_authorized_keys": keys}]}
    # width: one key per line, as in authorized_keys (YAML would fold a long key over two lines)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1 << 16)
    return b"#cloud-config\n" + text.encode()


def plan_seed(text: str, vm_dir: Path, vm_name: str, instance_id: str) -> SeedPlan:
    """Read and check what ``--cloud-init`` names; nothing is written."""
    opts = parse_cloud_init(text)
    hostname = opts.get("hostname") or vm_name
    files: list[SeedFile] = []
    warnings: list[str] = []
    user: Optional[str] = None
    if "ssh-key" in opts:
        user = opts.get("user") or default_user()
        files.append(SeedFile("user-data", default_user_data(user, public_keys(opts["ssh-key"])), "generated"))
    else:
        data = _read("user-data", opts["user-data"])
        warning = _check_passwords(data, opts["user-data"], vm_dir)
        if warning:
            warnings.append(warning)
        files.append(SeedFile("user-data", data, opts["user-data"]))
    if "meta-data" in opts:
        files.append(SeedFile("meta-data", _read("meta-data", opts["meta-data"]), opts["meta-data"]))
    else:
        # instance-id is the VM's uuid: cloud-init runs its per-instance steps once per VM,
        # and a VM regenerated with --force (same uuid) is not provisioned again.
        meta = f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n"
        files.append(SeedFile("meta-data", meta.encode(), "generated"))
    if "network-config" in opts:
        files.append(SeedFile("network-config", _read("network-config", opts["network-config"]),
                              opts["network-config"]))
    return SeedPlan(str((vm_dir / SEED_FILE).absolute()), tuple(files), user, hostname, tuple(warnings))


def _check_passwords(data: bytes, path: str, vm_dir: Path) -> Optional[str]:
    """Refuse a clear-text password in cloud-config user-data; a warning for text that is not YAML."""
    from ..errors import ConfigError
    found = clear_passwords(data)
    where = f"--cloud-init user-data={path}"
    if found is None:  # not YAML: only a search, which cannot tell a hash (or a comment) from a password
        keys = sorted({m.group(1) for m in CLEAR_PASSWORD.finditer(data.decode("utf-8", errors="replace"))})
        if not keys:
            return None
        return (f"{where} is not cloud-config YAML, and mentions {', '.join(keys)}: if it sets a password in clear "
                f"text, that is stored in {vm_dir / SEED_FILE} (mode 0600) and readable by anyone inside the guest "
                "who can read the CD-ROM; prefer SSH keys or a crypt hash")
    if found:
        raise ConfigError(f"{where} sets a password in clear text ({', '.join(found)}): it would be stored in the "
                          "seed in the store and on a CD-ROM anyone in the guest can read; give a crypt hash instead "
                          "('mkpasswd -m sha-512': users[].passwd or hashed_passwd, chpasswd users with type hash) "
                          "or log in with SSH keys")
    return None


def clear_passwords(data: bytes) -> Optional[list[str]]:
    """Where cloud-config ``data`` holds a password in clear text (``users[0].plain_text_passwd``,
    ``chpasswd.list[1]``...); None when it is no cloud-config YAML (then nobody can tell).

    cloud-init reads user-data as cloud-config only when its first line is ``#cloud-config``
    (a script, a MIME multi-part or a Jinja template is something else, and a shell line such
    as ``echo 'a: b'`` would even parse as a YAML mapping)."""
    from ..errors import ConfigError
    from ..safefiles import MAX_YAML_BYTES, parse_yaml
    if len(data) > MAX_YAML_BYTES or not data.lstrip(b"\xef\xbb\xbf").startswith(b"#cloud-config"):
        return None
    try:
        tree = parse_yaml(data.decode("utf-8"), "user-data")
    except (ConfigError, UnicodeDecodeError):
        return None
    if not isinstance(tree, (dict, list)):
        return None  # a script or plain text that happens to be a YAML scalar
    found: list[str] = []
    _walk(tree, "", found)
    chpasswd = tree.get("chpasswd") if isinstance(tree, dict) else None
    entries = chpasswd.get("list") if isinstance(chpasswd, dict) else None
    # chpasswd.list (deprecated, still read): 'user:password' lines, as a YAML list or one string.
    lines = entries.splitlines() if isinstance(entries, str) else entries if isinstance(entries, list) else []
    for i, line in enumerate(lines):
        _user, _, secret = str(line).partition(":")
        if _clear(secret) and secret not in ("R", "RANDOM"):
            found.append(f"chpasswd.list[{i}]")
    return found


def _walk(node: object, path: str, found: list[str]) -> None:
    if isinstance(node, dict):
        kind = str(node.get("type", "")).upper()
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in PASSWORD_KEYS and _clear(value) and kind != "RANDOM":
                found.append(where)
            elif isinstance(value, (dict, list)):
                _walk(value, where, found)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", found)


def _clear(value: object) -> bool:
    """A password value that is not empty and not a crypt hash."""
    if isinstance(value, bool) or value is None:
        return False
    text = str(value).strip()
    return bool(text) and not CRYPT_HASH.match(text)


def iso_tool() -> list[str]:
    import shutil

    from ..errors import VirtscenarioError
    for name in ISO_TOOLS:
        path = shutil.which(name)
        if path:
            return [path]
    raise VirtscenarioError("--cloud-init needs xorriso (or genisoimage) to make the seed ISO (Debian, SUSE, "
                            "Fedora: install xorriso)")


def write_seed(plan: SeedPlan, at: Optional[Path] = None) -> None:
    """Make the seed ISO under a temporary name and rename it to ``plan.path`` (or ``at``, where the
    store stages a new VM); mode 0600, since user-data may hold secrets.

    The temporary names (``.cidata.part-<hex>``, ``.seed.iso.part-<hex>``) are the ones the store
    removes as leftovers of a killed run.
    """
    import os
    import shutil
    import subprocess

    from ..errors import VirtscenarioError
    from .fsutil import token
    target = at or Path(plan.path)
    tool = iso_tool()
    staging = target.parent / f".cidata.part-{token()}"
    tmp = target.parent / f".{target.name}.part-{token()}"
    os.mkdir(staging, 0o700)
    try:
        for seed_file in plan.files:
            fd = os.open(staging / seed_file.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(seed_file.data)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        # Options as virt-install's: Joliet and Rock Ridge names, UTF-8 file names, label cidata.
        argv = [*tool, "-quiet", "-o", str(tmp), "-J", "-input-charset", "utf8", "-rational-rock", "-V", LABEL,
                str(staging)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise VirtscenarioError(f"{Path(tool[0]).name} failed to make {target}: "
                                    f"{lines[-1] if lines else f'exit status {result.returncode}'}")
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)  # a symbolic link at target is replaced, never followed
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
