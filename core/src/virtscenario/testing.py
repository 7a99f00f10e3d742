"""pytest helpers for plugin authors (registered as the ``pytest11`` plugin ``virtscenario``).

pytest loads this module in every run where virtscenario is installed, so it
imports nothing heavy at import time (lxml, libvirt and the pipeline are imported
inside the helpers) and every fixture name starts with ``virtscenario_``.

Fixtures:

``virtscenario_plugins``
    Override it to list your plugin modules; ``virtscenario_pm`` and
    ``virtscenario_render`` use it. Default: no plugin besides the core's.
``virtscenario_pm`` / ``virtscenario_make_pm``
    A plugin manager holding exactly the given plugins (plus the core's default
    plugins unless ``core=False``); no installed entry point is loaded.
``virtscenario_render``
    ``virtscenario_render(name, plugins=None, **opts)`` generates a scenario's VM
    through the real pipeline and returns a :class:`RenderResult` (``.xml``,
    ``.tree``, ``.settings``, ``.domain``, ``.notes``, ``.host_requirements``).
``virtscenario_host_root`` / ``virtscenario_make_host_root``
    A fake host (:class:`virtscenario.api.HostRoot` over a temporary directory)
    with ``/proc`` and ``/sys`` files: cpuinfo, meminfo, cmdline, CPU topology,
    NUMA node, hugepage pools and the usual tunables.
``virtscenario_libvirt_conn`` / ``virtscenario_make_libvirt_conn``
    A private libvirt test-driver connection (``test:///<tmp>/node.xml``: its own
    state, unlike the shared ``test:///default``), closed at teardown.

The plain functions (:func:`make_plugin_manager`, :func:`render_scenario`,
:func:`make_fake_host`, :func:`installed_plugins`) work outside pytest too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from lxml import etree

    from .hostroot import HostRoot
    from .model import Domain
    from .pipeline import Generated
    from .plugins import PluginInfo, VirtscenarioPluginManager
    from .types import DomainCaps, HostInfo, HostRequirement, Note, Settings

#: The core's own plugins (entry-point names as the core registers them).
CORE_PLUGINS = {"core_choices": "virtscenario.default_plugins.choices",
                "core_rules": "virtscenario.default_plugins.rules"}

PluginSpec = Any  # a module, an object, a module name, or a (name, plugin) pair


# -- plugin managers ------------------------------------------------------------------
def _named(plugin: PluginSpec) -> tuple[str, object]:
    if isinstance(plugin, tuple):
        return plugin[0], plugin[1]
    if isinstance(plugin, str):
        plugin = importlib.import_module(plugin)
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    # A module virtscenario_lab is registered as "lab", the name its entry point uses.
    short = name.rsplit(".", 1)[-1]
    return (short[len("virtscenario_"):] if short.startswith("virtscenario_") else short), plugin


def make_plugin_manager(plugins: Iterable[PluginSpec] = (), core: bool = True) -> VirtscenarioPluginManager:
    """A plugin manager holding exactly ``plugins`` (modules, objects, module names or
    ``(name, plugin)`` pairs), plus the core's default plugins when ``core`` is true.

    Plugins are registered like the entry-point loader does (descending name, so
    hooks run in ascending plugin-name order) and checked the same way: a
    misspelled hook raises ``pluggy.PluginValidationError`` and a plugin needing
    another API version raises ``IncompatiblePlugin``.
    """
    from .plugins import VirtscenarioPluginManager
    entries: dict[str, tuple[object, bool]] = {}
    if core:
        for name, module in CORE_PLUGINS.items():
            entries[name] = (importlib.import_module(module), True)
    for spec in plugins:
        name, plugin = _named(spec)
        if name in entries:
            raise ValueError(f"two plugins are named {name!r}; pass (name, plugin) pairs to tell them apart")
        entries[name] = (plugin, False)
    pm = VirtscenarioPluginManager()
    for name in sorted(entries, reverse=True):
        plugin, builtin = entries[name]
        dist, version = _distribution(plugin) if not builtin else ("virtscenario", "")
        pm.register_plugin(plugin, name, distribution=dist or name, version=version, builtin=builtin)
    return pm


def _distribution(plugin: object) -> tuple[str, str]:
    """The installed distribution of a plugin module (so provenance reads as on the CLI), if any."""
    import types
    if not isinstance(plugin, types.ModuleType):
        return "", ""
    from importlib import metadata
    try:
        names = metadata.packages_distributions().get(plugin.__name__.split(".")[0], [])
        return (names[0], metadata.version(names[0])) if names else ("", "")
    except Exception:  # noqa: BLE001 - provenance text only; never fail a test over it
        return "", ""


def installed_plugins() -> dict[str, PluginInfo]:
    """Load the installed entry points into a fresh plugin manager: name -> PluginInfo
    (``status`` is active, error, disabled or incompatible). Nothing is reported on stderr."""
    from .plugins import VirtscenarioPluginManager
    pm = VirtscenarioPluginManager()
    pm.load_entrypoints()
    return dict(pm.infos)


# -- rendering ------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderResult:
    """A generated VM: the XML bytes, the parsed tree and everything the pipeline decided."""

    xml: bytes
    tree: etree._Element
    settings: Settings
    domain: Domain
    notes: tuple[Note, ...]
    host_requirements: tuple[HostRequirement, ...]
    validated: bool
    generated: Generated

    def value(self, key: str) -> Any:
        return self.settings.value(key)

    def note_texts(self) -> list[str]:
        return [n.message for n in self.notes]


def render_scenario(name: str, plugins: Iterable[PluginSpec] = (), *, core: bool = True,
                    pm: Optional[VirtscenarioPluginManager] = None, vm_name: str = "vs-test",
                    settings: Optional[Mapping[str, Any]] = None, vcpus: Optional[int] = None,
                    memory: Optional[str] = None, host: Union[HostInfo, HostRoot, None] = None,
                    caps: Optional[DomainCaps] = None, libvirt_version: Optional[int] = None,
                    disks: Optional[Sequence[str]] = None, networks: Optional[Sequence[str]] = None,
                    store_root: Union[str, Path, None] = None, schema: Optional[str] = None) -> RenderResult:
    """Generate scenario ``name`` through the real pipeline (settings, hooks, rules, RelaxNG).

    ``settings`` are applied like ``--set KEY=VALUE`` flags; ``disks`` and
    ``networks`` take ``--disk``/``--network`` specs (``["size=10"]``,
    ``["user"]``); ``host`` is a HostInfo or a HostRoot (read like
    ``--host-root``). Nothing is written: ``store_root`` only names image paths.
    Errors propagate (``VirtscenarioError``: use ``pytest.raises``).
    """
    from lxml import etree

    from .catalog import Catalog
    from .hostroot import HostRoot
    from .pipeline import Request, generate
    from .specs import parse_disk, parse_network

    if pm is None:
        pm = make_plugin_manager(plugins, core=core)
    cli: list[tuple[str, Any, str]] = []
    if vcpus is not None:
        cli.append(("vm.vcpus", vcpus, "--vcpus"))
    if memory is not None:
        cli.append(("vm.memory", memory, "--memory"))
    for key, value in (settings or {}).items():
        cli.append((key, value, f"--set {key}"))
    if isinstance(host, HostRoot):
        from .hostinfo import read_host
        host = read_host(host)
    disk_specs = None if disks is None else [d for d in (parse_disk(x) for x in disks) if d is not None]
    net_specs = None if networks is None else [n for n in (parse_network(x) for x in networks) if n is not None]
    root = Path(store_root) if store_root is not None else Path("/nonexistent/virtscenario-test-store")
    req = Request(scenario=name, name=vm_name, cli_settings=cli, disks=disk_specs, networks=net_specs,
                  store_root=root, caps=caps, host=host, libvirt_version=libvirt_version, schema=schema,
                  inspect_images=False)
    gen = generate(req, Catalog(pm))
    tree = etree.fromstring(gen.xml)
    return RenderResult(gen.xml, tree, gen.settings, gen.domain, tuple(gen.notes), tuple(gen.host_requirements),
                        gen.validated, gen)


# -- a fake host ----------------------------------------------------------------------
def make_fake_host(root: Union[str, Path], *, cpus: int = 8, sockets: int = 1, threads_per_core: int = 1,
                   memory: str = "16GiB", hugepage_sizes_kib: Sequence[int] = (2048, 1048576),
                   vendor: str = "GenuineIntel", model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
                   flags: Sequence[str] = (), cmdline: str = "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet",
                   files: Optional[Mapping[str, str]] = None) -> HostRoot:
    """Create a host tree under ``root`` and return a HostRoot over it.

    CPUs are numbered like Linux numbers them on x86: the first thread of every
    core, socket by socket, then the sibling threads (``cpu0`` and ``cpu8`` are
    SMT siblings on an 8-core, 16-thread host). One NUMA node per socket.
    ``files`` adds or replaces files (absolute host path -> content).
    """
    from .hostroot import HostRoot
    from .units import parse_size
    if cpus < 1 or sockets < 1 or threads_per_core < 1 or cpus % (sockets * threads_per_core):
        raise ValueError(f"{cpus} CPUs cannot be split into {sockets} sockets of {threads_per_core}-thread cores")
    base = Path(root)
    cores_total = cpus // threads_per_core
    cores_per_socket = cores_total // sockets
    tree: dict[str, str] = {}
    smt = ["ht"] if threads_per_core > 1 else []
    virt = ["vmx"] if vendor == "GenuineIntel" else ["svm"]
    big = ["pdpe1gb"] if 1048576 in hugepage_sizes_kib else []
    all_flags = " ".join(dict.fromkeys(["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "apic", "cmov", "lm",
                                        "constant_tsc", "nonstop_tsc", "x2apic", "tsc_deadline_timer",
                                        "avx2", *smt, *virt, *big, *flags]))
    siblings: dict[int, list[int]] = {}
    layout = []
    for thread in range(threads_per_core):
        for core in range(cores_total):
            cpu = thread * cores_total + core
            siblings.setdefault(core, []).append(cpu)
            layout.append((cpu, core % cores_per_socket, core // cores_per_socket))
    info = []
    for cpu, core_id, socket in sorted(layout):
        info.append(f"processor\t: {cpu}\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
                    f"physical id\t: {socket}\ncore id\t\t: {core_id}\ncpu cores\t: {cores_per_socket}\n"
                    f"flags\t\t: {all_flags}\n")
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        tree[f"{topo}/core_id"] = f"{core_id}\n"
        tree[f"{topo}/physical_package_id"] = f"{socket}\n"
        sib = siblings[socket * cores_per_socket + core_id]
        tree[f"{topo}/thread_siblings_list"] = ",".join(map(str, sib)) + "\n"
    from .hostinfo import format_cpulist
    for socket in range(sockets):
        ids = [c for c, _core, s in layout if s == socket]
        tree[f"/sys/devices/system/node/node{socket}/cpulist"] = format_cpulist(ids) + "\n"
    tree["/sys/devices/system/cpu/online"] = f"0-{cpus - 1}\n" if cpus > 1 else "0\n"
    tree["/sys/devices/system/cpu/isolated"] = "\n"
    tree["/sys/devices/system/cpu/smt/active"] = "1\n" if threads_per_core > 1 else "0\n"
    tree["/proc/cpuinfo"] = "\n".join(info)
    kib = parse_size(memory, "MiB") // 1024
    tree["/proc/meminfo"] = (f"MemTotal:       {kib} kB\nMemFree:        {kib * 3 // 4} kB\n"
                             f"MemAvailable:   {kib * 7 // 8} kB\nHugePages_Total:       0\n"
                             "HugePages_Free:        0\nHugepagesize:       2048 kB\n")
    tree["/proc/cmdline"] = cmdline + "\n"
    for size in hugepage_sizes_kib:
        tree[f"/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages"] = "0\n"
        tree[f"/sys/kernel/mm/hugepages/hugepages-{size}kB/free_hugepages"] = "0\n"
    tree["/proc/sys/vm/nr_hugepages"] = "0\n"
    tree["/proc/sys/vm/swappiness"] = "60\n"
    tree["/sys/kernel/mm/transparent_hugepage/enabled"] = "always [madvise] never\n"
    tree["/sys/kernel/mm/transparent_hugepage/defrag"] = "always defer defer+madvise [madvise] never\n"
    tree["/sys/kernel/mm/ksm/run"] = "0\n"
    tree.update(files or {})
    for host_path, content in tree.items():
        path = base / host_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return HostRoot(base)


# -- a private libvirt test connection ------------------------------------------------
def libvirt_node_xml(cpus: int = 8, sockets: int = 1, threads_per_core: int = 1, memory_kib: int = 16 * 1024**2,
                     domains: Sequence[str] = ()) -> str:
    """A custom test-driver file: node topology, memory and optional inline domains."""
    cores = cpus // (sockets * threads_per_core)
    return ("<node>\n  <cpu>\n    <nodes>1</nodes>\n"
            f"    <sockets>{sockets}</sockets>\n    <cores>{cores}</cores>\n    <threads>{threads_per_core}</threads>\n"
            f"    <active>{cpus}</active>\n    <mhz>3000</mhz>\n    <model>x86_64</model>\n  </cpu>\n"
            f"  <memory>{memory_kib}</memory>\n" + "".join(domains) + "</node>\n")


def open_test_connection(directory: Union[str, Path], **node: Any) -> Any:
    """Open ``test:///DIR/node.xml``: private state, unlike ``test:///default`` (shared per process)."""
    try:
        import libvirt
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.fail("virtscenario_libvirt_conn needs libvirt-python (pip install libvirt-python; "
                    "it builds against libvirt-dev and pkg-config)")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    path = Path(directory).absolute() / "node.xml"
    path.write_text(libvirt_node_xml(**node))
    return libvirt.open(f"test://{path}")


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def virtscenario_plugins() -> Sequence[PluginSpec]:
    """Override in your tests: the plugin modules virtscenario_pm and virtscenario_render use."""
    return ()


@pytest.fixture
def virtscenario_make_pm() -> Callable[..., VirtscenarioPluginManager]:
    """Factory: ``virtscenario_make_pm(*plugins, core=True)``."""
    def make(*plugins: PluginSpec, core: bool = True) -> VirtscenarioPluginManager:
        return make_plugin_manager(plugins, core=core)
    return make


@pytest.fixture
def virtscenario_pm(virtscenario_plugins: Sequence[PluginSpec]) -> VirtscenarioPluginManager:
    """A plugin manager with the core's default plugins and ``virtscenario_plugins``."""
    return make_plugin_manager(virtscenario_plugins)


@pytest.fixture
def virtscenario_render(virtscenario_plugins: Sequence[PluginSpec], tmp_path: Path) -> Callable[..., RenderResult]:
    """``virtscenario_render(name, plugins=None, **opts)``: see :func:`render_scenario`.

    ``plugins=None`` uses the ``virtscenario_plugins`` fixture.
    """
    def render(name: str, plugins: Optional[Iterable[PluginSpec]] = None, **opts: Any) -> RenderResult:
        opts.setdefault("store_root", tmp_path / "store")
        return render_scenario(name, virtscenario_plugins if plugins is None else plugins, **opts)
    return render


@pytest.fixture
def virtscenario_make_host_root(tmp_path: Path) -> Callable[..., HostRoot]:
    """Factory: ``virtscenario_make_host_root(cpus=16, threads_per_core=2, ...)``: see :func:`make_fake_host`."""
    count = iter(range(1_000_000))

    def make(**shape: Any) -> HostRoot:
        return make_fake_host(tmp_path / f"host{next(count)}", **shape)
    return make


@pytest.fixture
def virtscenario_host_root(virtscenario_make_host_root: Callable[..., HostRoot]) -> HostRoot:
    """A fake 8-CPU, 1-socket, 16 GiB Intel host offering 2 MiB and 1 GiB hugepages."""
    return virtscenario_make_host_root()


@pytest.fixture
def virtscenario_make_libvirt_conn(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``virtscenario_make_libvirt_conn(cpus=8, sockets=1, threads_per_core=1, domains=[...])``."""
    conns = []
    count = iter(range(1_000_000))

    def make(**node: Any) -> Any:
        directory = tmp_path / f"libvirt{next(count)}"
        directory.mkdir()
        conn = open_test_connection(directory, **node)
        conns.append(conn)
        return conn
    yield make
    for conn in conns:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a connection the test closed itself
            pass


@pytest.fixture
def virtscenario_libvirt_conn(virtscenario_make_libvirt_conn: Callable[..., Any]) -> Any:
    """A private test-driver connection: 8 CPUs, 16 GiB, no domain."""
    return virtscenario_make_libvirt_conn()
