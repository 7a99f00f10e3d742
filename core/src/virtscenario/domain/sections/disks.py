"""Disks: new images (format, size, qemu-img options, LUKS), existing images, CD-ROM, and how
QEMU opens them (bus, cache, I/O mode, discard, zero detection, iothread).

``<devices><disk>``. ``--disk size=20,cache=writeback`` is parsed here and becomes the
per-device settings ``disks[0].size`` and ``disks[0].cache`` (layer ``flag``), shown in
vm.yaml, the settings table and ``--json`` like any other setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ...records import FrozenRecord, Record, frozen_record, record
from ...settings.types import ResolvedSetting, SettingSpec
from .refs import FD, OSINFO_LINUX, QEMU_IMG

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from ...settings.registry import SettingRegistry
    from ...settings.types import Settings
    from ..context import BuildContext
    from ..model import Domain, VmPlan
    from ..xml import Element

DISK_DOC = FD + "#hard-drives-floppy-disks-cdroms"

SPECS = (
    SettingSpec("disk.format", "choice", "qcow2", "Image format", ("qcow2", "raw"),
                rationale="qcow2: thin provisioning, snapshots and backing files, and the only format that "
                          "can carry LUKS encryption here",
                reference="https://www.qemu.org/docs/master/system/images.html"),
    SettingSpec("disk.cache", "choice", "none", "Host page-cache mode of the disk",
                ("none", "writeback", "writethrough", "directsync", "unsafe"),
                rationale="cache=none (O_DIRECT): the guest's flushes reach the disk and the host page cache "
                          "is not filled twice",
                reference=DISK_DOC),
    SettingSpec("disk.io", "choice", None, "I/O submission mode", ("native", "threads", "io_uring"),
                rationale="unset: QEMU's default (a thread pool), which works with every cache mode",
                reference=DISK_DOC),
    SettingSpec("disk.bus", "choice", "virtio", "Disk bus", ("virtio", "scsi", "sata"),
                rationale="virtio-blk: the paravirtual disk every current Linux and the virtio-win drivers "
                          "support, with the least emulation",
                reference=DISK_DOC),
    SettingSpec("disk.discard", "choice", None, "Pass guest discard (TRIM) to the image", ("unmap", "ignore"),
                rationale="unset: QEMU ignores discard requests, so images never shrink",
                reference=DISK_DOC),
    SettingSpec("disk.detect_zeroes", "choice", None, "Detect zero writes", ("off", "on", "unmap"),
                rationale="unset: zero writes are written as data (QEMU's default, no scanning cost)",
                reference=DISK_DOC),
    SettingSpec("disk.size", "size", 20 * 1024**3, "Size of a new image (bare numbers are GiB)", unit="GiB",
                maximum=2**61,
                rationale="20 GiB: twice libosinfo's 10 GiB minimum for its generic Linux guest; a qcow2 image "
                          "only takes what the guest writes",
                reference=OSINFO_LINUX),
    SettingSpec("disk.preallocation", "choice", "off", "Image preallocation", ("off", "metadata", "falloc", "full"),
                rationale="off: the image grows as the guest writes (thin provisioning)",
                reference=QEMU_IMG),
    SettingSpec("disk.cluster_size", "size", None, "qcow2 cluster size (bare numbers are KiB)", unit="KiB",
                minimum=512, maximum=2 * 1024**2,  # qcow2's range (QEMU docs/interop/qcow2.txt); a power of two
                rationale="unset: qemu-img's 64 KiB clusters",
                reference=QEMU_IMG, applies_when=("disk.format=qcow2",)),
    SettingSpec("disk.lazy_refcounts", "bool", False, "qcow2 lazy refcounts",
                rationale="off: refcounts are written as clusters are allocated, so a host crash never needs an "
                          "image repair",
                reference=QEMU_IMG, applies_when=("disk.format=qcow2",)),
    SettingSpec("disk.compression", "choice", None, "qcow2 compression type", ("zlib", "zstd"),
                rationale="unset: qemu-img's zlib, used only for clusters written compressed",
                reference=QEMU_IMG, applies_when=("disk.format=qcow2",)),
    SettingSpec("disk.encryption", "bool", False, "LUKS-encrypt new qcow2 images",
                rationale="off: encryption costs CPU on every I/O; scenarios that protect data at rest turn it "
                          "on",
                reference="https://libvirt.org/formatstorageencryption.html", applies_when=("disk.format=qcow2",)),
    SettingSpec("disk.luks_iter_time", "int", None,
                "Milliseconds of LUKS key derivation per unlock (qemu-img encrypt.iter-time)", minimum=1,
                maximum=60000,
                rationale="unset: qemu-img's 2000 ms, which makes guessing a weak --passphrase-file slow; the "
                          "random disk.secret (256 bits) does not need it",
                reference="https://www.qemu.org/docs/master/system/qemu-block-drivers.html#cmdoption-qcow2-arg-"
                          "encrypt.iter-time"),
    SettingSpec("disk.directory", "str", None, "Where new images go (default: the VM's store directory)",
                rationale="unset: a VM's images live next to its domain.xml and vm.yaml, so they are found and "
                          "removed together",
                reference="docs/store.md"),
)

#: ``--disk`` options, virt-install's names; those that override a setting become ``disks[i].NAME``.
DISK_OPTIONS = ("path", "size", "format", "cache", "bus", "io", "discard", "detect_zeroes", "device", "overlay")
DEVICE_KEYS = ("size", "format", "cache", "bus", "io", "discard", "detect_zeroes")


@frozen_record
class DiskArg(FrozenRecord):
    """One ``--disk`` argument as given on the command line (values not yet checked against the settings)."""

    path: Optional[str] = None
    size: Optional[str] = None
    format: Optional[str] = None
    cache: Optional[str] = None
    bus: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None
    detect_zeroes: Optional[str] = None
    overlay: bool = False  # path= is the read-only base of a new qcow2 overlay in the store


def parse_disk(text: str) -> Optional[DiskArg]:
    """``size=20,format=qcow2``, ``path=IMAGE``, or ``none`` (returns None)."""
    from ...errors import ConfigError
    from ...settings.cliargs import option_pairs
    if text.strip() == "none":
        return None
    opts = option_pairs(text, DISK_OPTIONS, "--disk")
    if opts.pop("device", "disk") != "disk":
        raise ConfigError(f"--disk {text!r}: only device=disk is supported here; use --cdrom ISO for a CD-ROM")
    if "path" not in opts and "size" not in opts:
        raise ConfigError(f"--disk {text!r}: give size=GiB for a new image or path=IMAGE for an existing one")
    overlay = _overlay_flag(opts.pop("overlay", "off"), text)
    if overlay and "path" not in opts:
        raise ConfigError(f"--disk {text!r}: overlay=on needs path=BASE (the image the overlay is based on)")
    if overlay and opts.get("format", "qcow2") != "qcow2":
        raise ConfigError(f"--disk {text!r}: an overlay is a qcow2 image (only qcow2 has backing files), not "
                          f"{opts['format']}; drop format= (the base's own format is read from the base)")
    if "path" in opts and "size" in opts and not overlay:
        raise ConfigError(f"--disk {text!r}: give either size= (new image) or path= (existing image), not both "
                          "(or path=BASE,overlay=on,size=N for a larger overlay)")
    return DiskArg(**opts, overlay=overlay)


def _overlay_flag(value: str, text: str) -> bool:
    from ...errors import ConfigError
    word = value.strip().lower()
    if word in ("on", "yes", "true", "1"):
        return True
    if word in ("off", "no", "false", "0"):
        return False
    raise ConfigError(f"--disk {text!r}: overlay={value!r} is not on or off")


def device_settings(specs: list[DiskArg], registry: SettingRegistry,
                    settings: Settings) -> dict[str, ResolvedSetting]:
    """``disks[i].NAME`` for every option a ``--disk`` gave, coerced like the setting it overrides."""
    from ...settings.resolve import device_overrides
    return device_overrides(specs, DEVICE_KEYS, "disk", "disks", "--disk", "disk", registry, settings)


@frozen_record
class DiskPlan(FrozenRecord):
    """One disk of the VM: an image to create (size set) or an existing one."""

    path: str
    format: str
    size: Optional[int]
    bus: str
    cache: Optional[str]
    io: Optional[str]
    discard: Optional[str]
    detect_zeroes: Optional[str] = None
    encrypted: bool = False
    block: bool = False
    backing: Optional[str] = None  # overlay: the base image, never written
    backing_format: Optional[str] = None
    pool: Optional[str] = None  # a volume of this libvirt storage pool on the VM's host (create --place/--pool)
    volume: Optional[str] = None  # its name in that pool

    @property
    def create(self) -> bool:
        """Whether the image is new (``qemu-img create`` makes it, an overlay included) rather than an
        existing file."""
        return self.size is not None or self.backing is not None


@frozen_record
class ImagePlan(FrozenRecord):
    """How ``qemu-img create`` makes a new image: format, ``-o`` options, LUKS or not."""

    path: str
    format: str
    size: int
    options: tuple[str, ...]  # -o key=value items (without the encryption ones)
    encrypt: bool
    backing: Optional[str] = None  # a qcow2 overlay on this base (size 0: the base's size)
    backing_format: Optional[str] = None


@frozen_record
class PoolTarget(FrozenRecord):
    """New disks become volumes of this libvirt storage pool on the VM's host instead of images in the
    store (``create --place`` / ``--pool``): the host's libvirt makes them, never a local qemu-img."""

    name: str
    path: str  # the pool's <target><path> on that host: a volume's path is <path>/<volume>
    host: str = ""  # how to name the host in messages (inventory name or URI)


def plan_disks(specs: Optional[list[DiskArg]], settings: Settings, vm_dir: Path, vm_name: str,
               inspect_images: bool, pool: Optional[PoolTarget] = None) -> list[DiskPlan]:
    """Every disk of the VM, from ``--disk`` options (None: one new disk from the settings); with ``pool``
    new disks are volumes of that pool on the VM's host."""
    import stat
    from pathlib import Path

    from ...errors import ConfigError
    s = settings.value
    if specs is None:
        specs = [DiskArg()]  # one new disk of disk.size
    image_dir = Path(s("disk.directory")).expanduser().absolute() if s("disk.directory") else vm_dir
    plans: list[DiskPlan] = []
    for i, spec in enumerate(specs):
        def value(name: str, i: int = i) -> object:
            return settings.device_value("disks", i, name, f"disk.{name}")
        bus, cache, io = value("bus"), value("cache"), value("io")
        discard, zeroes = value("discard"), value("detect_zeroes")
        if pool is not None and (spec.overlay or spec.path is not None):
            raise ConfigError(f"--disk path={spec.path}{',overlay=on' if spec.overlay else ''}: a file on this "
                              f"machine, which {pool.host or 'the VM host'} cannot open; there new disks are "
                              f"volumes of pool {pool.name!r} (--disk size=GiB)")
        if spec.overlay:
            _refuse_encrypted_overlay(spec, settings)
            plans.append(_overlay_plan(spec, i, value, image_dir, vm_name, inspect_images))
        elif spec.path is not None:
            path = Path(spec.path).expanduser().absolute()
            if not path.exists():
                raise ConfigError(f"--disk path={spec.path}: no such file")
            block = stat.S_ISBLK(path.stat().st_mode)
            fmt = value("format") if spec.format else None
            encrypted = False
            if inspect_images:
                from ...vm.images import image_info
                info = image_info(str(path))
                fmt = fmt or info.get("format", "raw")
                encrypted = bool(info.get("encrypted")) and fmt == "qcow2" and not block
            fmt = fmt or "qcow2"  # not inspected (tests, --print-xml of a fixture): qcow2 as documented
            if fmt not in ("qcow2", "raw"):
                raise ConfigError(f"--disk path={spec.path}: format {fmt!r} is not supported (qcow2 or raw)")
            plans.append(DiskPlan(str(path), str(fmt), None, str(bus), cache, io, discard, zeroes,  # type: ignore[arg-type]
                                  encrypted, block))
        else:
            fmt = str(value("format"))
            suffix = "" if i == 0 else f"-{i}"
            encrypted = bool(s("disk.encryption")) and fmt == "qcow2"
            if pool is not None:
                volume = f"{vm_name}{suffix}.{fmt}"
                plans.append(DiskPlan(f"{pool.path.rstrip('/')}/{volume}", fmt, int(value("size")), str(bus),  # type: ignore[call-overload]
                                      cache, io, discard, zeroes, encrypted, pool=pool.name, volume=volume))  # type: ignore[arg-type]
                continue
            path = image_dir / f"{vm_name}{suffix}.{fmt}"
            plans.append(DiskPlan(str(path), fmt, int(value("size")), str(bus), cache, io, discard,  # type: ignore[arg-type,call-overload]
                                  zeroes, encrypted))
    return plans


def _refuse_encrypted_overlay(spec: DiskArg, settings: Settings) -> None:
    """An overlay is not encrypted at rest (nor is its base, which it reads through to). Where
    disk.encryption asks for encryption (securevm: "unreadable at rest"), dropping it with a
    note would be a silent downgrade of what the settings table still shows: refused, unless
    the user turns disk.encryption off."""
    from ...errors import ConfigError
    item = settings.get("disk.encryption")
    if item is None or not item.value:
        return
    raise ConfigError(f"--disk path={spec.path},overlay=on: disk.encryption is on ({item.source}), but an overlay "
                      "is not encrypted at rest and its base stays readable: add --set disk.encryption=off to "
                      "accept an unencrypted disk, or give a new disk (--disk size=GiB), which is encrypted")


def _overlay_plan(spec: DiskArg, index: int, value: Any, image_dir: Path, vm_name: str,
                  inspect_images: bool) -> DiskPlan:
    """``path=BASE,overlay=on[,size=N]``: a new qcow2 in the store whose backing file is BASE."""
    from pathlib import Path

    from ...errors import ConfigError
    base = Path(str(spec.path)).expanduser().absolute()
    if not base.is_file():
        raise ConfigError(f"--disk path={spec.path}: no such file (an overlay's base must be an image file)")
    fmt = None  # the base's format, read from the base (format= is the overlay's own: qcow2, parse_disk)
    size = int(value("size")) if spec.size is not None else None
    if inspect_images:
        from ...vm.images import image_info
        info = image_info(str(base))
        fmt = info.get("format", "raw")
        if info.get("encrypted"):
            raise ConfigError(f"--disk path={spec.path},overlay=on: the base is encrypted; an overlay on it would "
                              "need its secret (use the image itself, or a decrypted copy)")
        if size is not None and size < int(info.get("virtual-size") or 0):
            raise ConfigError(f"--disk path={spec.path},overlay=on,size=: the overlay cannot be smaller than its "
                              f"base ({info.get('virtual-size')} bytes)")
    fmt = fmt or "qcow2"
    if fmt not in ("qcow2", "raw"):
        raise ConfigError(f"--disk path={spec.path}: format {fmt!r} is not supported as a base (qcow2 or raw)")
    suffix = "" if index == 0 else f"-{index}"
    path = image_dir / f"{vm_name}{suffix}.qcow2"
    if path == base:
        raise ConfigError(f"--disk path={spec.path},overlay=on: the base is the overlay's own path")
    return DiskPlan(str(path), "qcow2", size, str(value("bus")), value("cache"), value("io"),  # type: ignore[arg-type]
                    value("discard"), value("detect_zeroes"), backing=str(base), backing_format=fmt)  # type: ignore[arg-type]


def plan_images(disks: list[DiskPlan], settings: Settings, ctx: BuildContext) -> list[ImagePlan]:
    """qemu-img options for every new image; options the format lacks are dropped with a note."""
    from . import unused
    s = settings.value
    out: list[ImagePlan] = []
    image_keys = ("disk.preallocation", "disk.cluster_size", "disk.lazy_refcounts", "disk.compression",
                  "disk.encryption", "disk.luks_iter_time")
    if not any(d.create for d in disks):
        for key in image_keys:
            unused(ctx, settings, key, "no new image is created (every --disk is path= or none)")
        return out
    prealloc = s("disk.preallocation")
    if not any(d.create and d.encrypted for d in disks):
        unused(ctx, settings, "disk.luks_iter_time", "no new image is encrypted")
    for disk in disks:
        if not disk.create:
            continue
        if disk.backing is not None:
            out.append(_overlay_image(disk, settings, ctx))
            continue
        if disk.pool is not None:
            _pool_volume(disk, settings, ctx)  # made by the host's storage pool, not by the store
            continue
        opts: list[str] = []
        if disk.format == "qcow2":
            check_qcow2_size(disk.path, disk.size or 0, s("disk.cluster_size"))
            if s("disk.cluster_size"):
                opts.append(f"cluster_size={s('disk.cluster_size')}")
            if prealloc != "off":
                opts.append(f"preallocation={prealloc}")
            opts.append(f"lazy_refcounts={'on' if s('disk.lazy_refcounts') else 'off'}")
            if s("disk.compression"):
                opts.append(f"compression_type={s('disk.compression')}")
            if disk.encrypted and s("disk.luks_iter_time"):
                opts.append(f"encrypt.iter-time={s('disk.luks_iter_time')}")
        else:  # raw
            if prealloc == "metadata":
                ctx.note("disk.preallocation=metadata: raw images have no metadata; using falloc")
                opts.append("preallocation=falloc")
            elif prealloc != "off":
                opts.append(f"preallocation={prealloc}")
            for key in ("disk.cluster_size", "disk.compression", "disk.lazy_refcounts", "disk.encryption",
                        "disk.luks_iter_time"):
                unused(ctx, settings, key, f"{disk.path} is a raw image (qcow2 only)")
        out.append(ImagePlan(disk.path, disk.format, disk.size or 0, tuple(opts), disk.encrypted))
    return out


#: qcow2's L1 table holds at most 32 MiB of 8-byte entries (QCOW_MAX_L1_SIZE), each mapping one
#: L2 table of cluster_size/8 clusters: the largest image is cluster_size**2 * 2**19 bytes
#: (2 PiB with the default 64 KiB clusters, 2 EiB with 2 MiB). Measured with qemu-img 7.2.
QCOW2_L1_ENTRIES = 32 * 1024 * 1024 // 8


def check_qcow2_size(path: str, size: int, cluster_size: Optional[int]) -> None:
    """Refuse what qemu-img would refuse, in one line, before anything is created."""
    from ...errors import ConfigError
    from ...units import format_size
    cluster = cluster_size or 64 * 1024
    if cluster < 512 or cluster > 2 * 1024 * 1024 or cluster & (cluster - 1):
        raise ConfigError(f"disk.cluster_size={format_size(cluster)}: qcow2 clusters are a power of two from 512 "
                          "bytes to 2 MiB")
    limit = cluster * (cluster // 8) * QCOW2_L1_ENTRIES
    if size > limit:
        raise ConfigError(f"disk size {format_size(size)} of {path} is above qcow2's limit of "
                          f"{format_size(limit)} with {format_size(cluster)} clusters (raise disk.cluster_size, "
                          "up to 2 MiB)")


def _pool_volume(disk: DiskPlan, settings: Settings, ctx: BuildContext) -> None:
    """What a storage pool volume can be made with: libvirt's volume XML has a format, capacity, allocation,
    qcow2 compat, cluster size, lazy refcounts and LUKS encryption (formatstorage.html), a create flag for
    qcow2 metadata preallocation, and nothing else (virtscenario.fleet.pool.volume_xml)."""
    from ...errors import ConfigError
    from . import unused
    s = settings.value
    where = f"{disk.volume} is a volume of pool {disk.pool}"
    prealloc = s("disk.preallocation")
    if disk.format == "qcow2":
        check_qcow2_size(disk.path, disk.size or 0, s("disk.cluster_size"))
        if prealloc not in ("off", "metadata"):
            raise ConfigError(f"disk.preallocation={prealloc}: {where}, and libvirt's storage pool API preallocates "
                              "a qcow2 volume with metadata only (off or metadata)")
        unused(ctx, settings, "disk.compression", f"{where}: libvirt's volume XML has no compression type "
               "(qemu-img's zlib default)")
        if disk.encrypted:
            unused(ctx, settings, "disk.luks_iter_time", f"{where}: libvirt's volume XML has no LUKS iteration "
                   "time (qemu-img's 2000 ms default)")
    else:
        if prealloc == "metadata":
            ctx.note("disk.preallocation=metadata: raw images have no metadata; using falloc")
        for key in ("disk.cluster_size", "disk.compression", "disk.lazy_refcounts", "disk.encryption",
                    "disk.luks_iter_time"):
            unused(ctx, settings, key, f"{disk.path} is a raw image (qcow2 only)")
    unused(ctx, settings, "disk.directory", f"{where} (the pool decides where it lives)")


def _overlay_image(disk: DiskPlan, settings: Settings, ctx: BuildContext) -> ImagePlan:
    """An overlay takes the qcow2 options but no preallocation (qemu-img refuses it with a backing file
    unless extended L2) and no encryption (plan_disks refused an overlay while disk.encryption is on)."""
    from . import unused
    s = settings.value
    opts = [f"lazy_refcounts={'on' if s('disk.lazy_refcounts') else 'off'}"]
    if s("disk.cluster_size"):
        opts.insert(0, f"cluster_size={s('disk.cluster_size')}")
    if s("disk.compression"):
        opts.append(f"compression_type={s('disk.compression')}")
    if s("disk.preallocation") != "off":
        unused(ctx, settings, "disk.preallocation", f"{disk.path} is an overlay on {disk.backing}: qemu-img "
               "preallocates no overlay (its unwritten clusters must read through to the base)")
    if s("disk.format") != "qcow2":
        unused(ctx, settings, "disk.format", f"{disk.path} is an overlay, and only qcow2 has backing files")
    return ImagePlan(disk.path, "qcow2", disk.size or 0, tuple(opts), False, disk.backing, disk.backing_format)


@record
class Encryption(Record):
    """``<disk><encryption format='luks'><secret uuid=...>``: a LUKS image whose passphrase is a libvirt secret."""

    format: str = "luks"
    secret_uuid: str = ""


@record
class Disk(Record):
    """One ``<disk>``: image path (``source``), ``target`` device name (``vda``), bus, how QEMU opens it (cache, io,
    discard, detect_zeroes, iothread) and per-device boot order.
    """

    target: str
    source: str = ""  # a file or device path (type volume: the volume's path on its host)
    type: str = "file"  # file|block|volume
    device: str = "disk"  # disk|cdrom
    format: str = "qcow2"
    bus: str = "virtio"
    cache: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None
    detect_zeroes: Optional[str] = None
    iothread: Optional[int] = None
    iommu: Optional[bool] = None
    readonly: bool = False
    shareable: bool = False
    boot_order: Optional[int] = None
    encryption: Optional[Encryption] = None
    serial: Optional[str] = None
    pool: Optional[str] = None  # type volume: the storage pool on the VM's host
    volume: Optional[str] = None  # type volume: the volume's name in that pool


def target_name(bus: str, index: int) -> str:
    """vda, vdb, ... for virtio; sda, ... for SCSI and SATA (aa after z, as libvirt counts)."""
    prefix = "vd" if bus == "virtio" else "sd"
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return prefix + letters


def build(dom: Domain, settings: Settings, ctx: BuildContext, plan: VmPlan) -> None:
    iommu = True if settings.value("devices.iommu") else None
    counters: dict[str, int] = {}
    virtio_index = 0
    for disk_plan in plan.disks:
        prefix = "vd" if disk_plan.bus == "virtio" else "sd"
        idx = counters.get(prefix, 0)
        counters[prefix] = idx + 1
        zeroes = disk_plan.detect_zeroes
        if zeroes == "unmap" and disk_plan.discard != "unmap":
            # QEMU refuses detect-zeroes=unmap unless discard=unmap.
            ctx.note(f"disk.detect_zeroes=unmap needs disk.discard=unmap for {disk_plan.path}: using 'on'")
            zeroes = "on"
        # A pool volume is named by pool and volume (formatdomain.html#hard-drives-floppy-disks-cdroms,
        # type 'volume'): libvirt resolves it on the VM's host when the domain starts, for any pool type,
        # and a migration with --copy-storage-all pre-creates it in the target's pool of the same name
        # (qemuMigrationDstPrecreateDisk) instead of needing the same directory there.
        kind = "volume" if disk_plan.pool else "block" if disk_plan.block else "file"
        disk = Disk(target=target_name(disk_plan.bus, idx), source=disk_plan.path,
                    type=kind, format=disk_plan.format, bus=disk_plan.bus,
                    cache=disk_plan.cache, io=disk_plan.io, discard=disk_plan.discard, detect_zeroes=zeroes,
                    iommu=iommu if disk_plan.bus == "virtio" else None, pool=disk_plan.pool,
                    volume=disk_plan.volume)
        if disk_plan.bus == "virtio" and dom.iothreads:
            # Spread virtio disks over the declared iothreads (1-based ids), so none sits unused.
            disk.iothread = virtio_index % dom.iothreads + 1
            virtio_index += 1
        if disk_plan.encrypted:
            disk.encryption = Encryption("luks", plan.identity.secret_uuid(disk_plan.path))
        dom.devices.disks.append(disk)
    # --cdrom, then the cloud-init seed (--cloud-init): read-only SATA CD-ROMs on q35's AHCI.
    for iso in (plan.cdrom, plan.seed.path if plan.seed else None):
        if iso:
            idx = counters.get("sd", 0)
            counters["sd"] = idx + 1
            dom.devices.disks.append(Disk(target=target_name("sata", idx), source=iso, device="cdrom",
                                          format="raw", bus="sata", readonly=True))


def render(devices: Element, dom: Domain) -> None:
    from ..xml import num, on, sub
    for disk in dom.devices.disks:
        el = sub(devices, "disk", type_=disk.type, device=disk.device)
        sub(el, "driver", name="qemu", type_=disk.format, cache=disk.cache, io=disk.io, discard=disk.discard,
            detect_zeroes=disk.detect_zeroes, iothread=num(disk.iothread), iommu=on(disk.iommu))
        if disk.type == "volume":
            src = sub(el, "source", pool=disk.pool, volume=disk.volume)
        elif disk.source:
            src = sub(el, "source", **({"file": disk.source} if disk.type == "file" else {"dev": disk.source}))
        if disk.type == "volume" or disk.source:
            if disk.encryption:
                enc = sub(src, "encryption", format=disk.encryption.format)
                sub(enc, "secret", type_="passphrase", uuid=disk.encryption.secret_uuid)
        sub(el, "target", dev=disk.target, bus=disk.bus)
        if disk.boot_order is not None:
            sub(el, "boot", order=str(disk.boot_order))
        if disk.readonly:
            sub(el, "readonly")
        if disk.shareable:
            sub(el, "shareable")
        if disk.serial:
            sub(el, "serial", disk.serial)
