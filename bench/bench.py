#!/usr/bin/env python3
"""Startup and throughput benchmark of virtscenario (method and results: docs/performance.md).

    .venv/bin/python bench/bench.py [--rounds 15] [--vms 1000] [--scenario desktop] [--markdown]

1. Whole processes, timed over ROUNDS rounds; inside each round the commands run in a
   rotated order so that drift (cache warmth, other load) hits all of them alike:
     floor    python -c "import lxml.etree, click, pluggy, yaml"   (what any such CLI pays)
     version  virtscenario --version
     create   virtscenario create SCENARIO --name b --print-xml --output TMP
              (warm: libvirt's schema already accepted this document shape, see
              domain/validcache.py, so the schema is not compiled)
     cold     the same with VIRTSCENARIO_NO_CACHE=1: the schema is compiled and validates
   Medians and the ratio to the floor are printed (target: <= 1.3 x).
2. In process: generate and RelaxNG-validate VMS VMs with one Catalog (target: < 1 s for 1000).
3. Where the time goes: the phases of one create process (imports, entry points, plugin
   loading, schema, generation), and the top imports from ``python -X importtime``.

Nothing is asserted: this measures, docs/performance.md interprets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLOOR_CODE = "import lxml.etree, click, pluggy, yaml"


def _cli() -> str:
    exe = BIN / "virtscenario"
    if not exe.exists():
        sys.exit(f"Error: {exe} not found: run bench.py with the project venv (.venv/bin/python bench/bench.py)")
    return str(exe)


def commands(scenario: str, out_dir: str) -> dict[str, list[str]]:
    cli = _cli()
    return {
        "floor": [sys.executable, "-c", FLOOR_CODE],
        "version": [cli, "--version"],
        "create": [cli, "create", scenario, "--name", "b", "--print-xml", "--output", out_dir],
        "cold": [cli, "create", scenario, "--name", "b", "--print-xml", "--output", out_dir],
    }


def command_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """'cold' is 'create' without the validation cache."""
    return dict(env, VIRTSCENARIO_NO_CACHE="1") if name == "cold" else env


def _env(home: str) -> dict[str, str]:
    env = dict(os.environ)
    # No user config or store of the person running the benchmark.
    env.update(XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data", XDG_CACHE_HOME=f"{home}/cache",
               PYTHONDONTWRITEBYTECODE="")
    for var in ("VIRTSCENARIO_TRACE_PLUGINS", "VIRTSCENARIO_DISABLE_PLUGINS", "VIRTSCENARIO_HOST_ROOT",
                "VIRTSCENARIO_NO_CACHE"):
        env.pop(var, None)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process; CPU time is what contention on a busy
    machine disturbs least, wall time is what a user waits."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"Error: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return elapsed, cpu


def time_processes(cmds: dict[str, list[str]], rounds: int, env: dict[str, str],
                   cwd: str) -> dict[str, list[tuple[float, float]]]:
    names = list(cmds)
    for name in names:  # warm-up: bytecode compiled, files in the page cache, validation cache filled
        run_once(cmds[name], command_env(name, env), cwd)
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(run_once(cmds[name], command_env(name, env), cwd))
    return samples


def in_process(scenario: str, count: int) -> dict[str, float]:
    """Generate + validate ``count`` VMs with one Catalog, as a long-running caller would."""
    from virtscenario.domain.generate import Request, generate
    from virtscenario.plugin.hooks import Catalog
    with tempfile.TemporaryDirectory() as store:
        t0 = time.perf_counter()
        catalog = Catalog()
        catalog.scenario(scenario)  # plugin loading + scenario registration
        t_catalog = time.perf_counter() - t0
        t1 = time.perf_counter()
        gen = generate(Request(scenario=scenario, name="bench-first", store_root=Path(store)), catalog)
        t_first = time.perf_counter() - t1
        if not gen.validated:
            sys.exit("Error: libvirt's RelaxNG schemas are not installed: validation would be skipped")
        t2 = time.perf_counter()
        for i in range(count):
            generate(Request(scenario=scenario, name=f"bench-{i:05d}", store_root=Path(store)), catalog)
        t_all = time.perf_counter() - t2
    return {"catalog_s": t_catalog, "first_vm_s": t_first, "total_s": t_all, "per_vm_ms": 1000 * t_all / count}


PHASES_CODE = """
import time, json, sys, tempfile
from pathlib import Path
marks = [("start", time.perf_counter())]
def mark(name): marks.append((name, time.perf_counter()))
import lxml.etree, click, pluggy, yaml
mark("floor imports (lxml.etree, click, pluggy, yaml)")
import virtscenario.cli.app, virtscenario.cli.commands.create, virtscenario.plugin.hooks, virtscenario.domain.generate
import virtscenario.domain.build, virtscenario.domain.render
mark("import virtscenario (cli, create, plugin hooks, generate, build, render)")
from virtscenario.plugin.discovery import entry_points
eps = entry_points("virtscenario")
mark("scan entry points (entry_points.txt, no importlib.metadata)")
from virtscenario.plugin.hooks import Catalog
cat = Catalog()
mark("load plugins (get_plugin_manager)")
cat.scenario(sys.argv[1])
mark("register scenarios and settings")
from virtscenario.domain.validate import load_schema
load_schema()
mark("load the RelaxNG schema")
from virtscenario.domain.generate import Request, generate
generate(Request(scenario=sys.argv[1], name="b", store_root=Path(tempfile.gettempdir())), cat)
mark("generate + validate one VM")
print(json.dumps([(b[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]))
"""


def phase_costs(scenario: str, env: dict[str, str], cwd: str, runs: int = 7) -> list[tuple[str, float]]:
    """Where one ``create --print-xml`` process spends its time, phase by phase (median of runs)."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PHASES_CODE, scenario], env=env, cwd=cwd, capture_output=True,
                             text=True, check=True).stdout
        samples.append(json.loads(out))
    return [(name, statistics.median(s[i][1] for s in samples)) for i, (name, _t) in enumerate(samples[0])]


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_profile(argv: list[str], env: dict[str, str], cwd: str) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) from ``python -X importtime``, median of 5 runs."""
    script = argv[0]
    runs: list[dict[str, tuple[int, int, int]]] = []
    for _ in range(5):
        proc = subprocess.run([sys.executable, "-X", "importtime", script, *argv[1:]], env=env, cwd=cwd,
                              capture_output=True, text=True)
        rows: dict[str, tuple[int, int, int]] = {}
        for line in proc.stderr.splitlines():
            m = _IMPORT_LINE.match(line)
            if m:
                rows[m.group(4)] = (int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2)
        runs.append(rows)
    modules = set().union(*runs)
    out = []
    for mod in modules:
        vals = [r[mod] for r in runs if mod in r]
        out.append((mod, int(statistics.median(v[0] for v in vals)), int(statistics.median(v[1] for v in vals)),
                    vals[0][2]))
    return out


def package_costs(profile: list[tuple[str, int, int, int]], limit: int) -> list[tuple[str, int]]:
    """Self time summed per top-level package (stdlib modules count under their own name)."""
    totals: dict[str, int] = {}
    for mod, self_us, _cum, _depth in profile:
        top = mod.split(".")[0]
        totals[top] = totals.get(top, 0) + self_us
    return sorted(totals.items(), key=lambda kv: -kv[1])[:limit]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--scenario", default="desktop")
    ap.add_argument("--top", type=int, default=15, help="rows of the import profile")
    ap.add_argument("--json", action="store_true", help="machine-readable results")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as home:
        env = _env(home)
        cmds = commands(args.scenario, f"{home}/vms")
        samples = time_processes(cmds, args.rounds, env, home)
        phases = phase_costs(args.scenario, env, home)
        profile = import_profile(cmds["create"], env, home)
        version_profile = import_profile(cmds["version"], env, home)
    inproc = in_process(args.scenario, args.vms)

    wall = {n: [w for w, _c in v] for n, v in samples.items()}
    cpu = {n: [c for _w, c in v] for n, v in samples.items()}
    med = {n: statistics.median(v) for n, v in wall.items()}
    med_cpu = {n: statistics.median(v) for n, v in cpu.items()}
    result: dict[str, Any] = {
        "machine": machine(),
        "load_average": os.getloadavg(),
        "rounds": args.rounds,
        "scenario": args.scenario,
        "processes": {n: {"median_ms": 1000 * med[n], "min_ms": 1000 * min(wall[n]), "max_ms": 1000 * max(wall[n]),
                          "ratio_to_floor": med[n] / med["floor"], "cpu_median_ms": 1000 * med_cpu[n],
                          "cpu_ratio_to_floor": med_cpu[n] / med_cpu["floor"]} for n in samples},
        "in_process": inproc,
        "phases_s": phases,
        "imports_create_top_self_us": sorted(((m, s) for m, s, _c, _d in profile), key=lambda x: -x[1])[:args.top],
        "imports_create_by_package_us": package_costs(profile, args.top),
        "imports_version_by_package_us": package_costs(version_profile, args.top),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return

    print(f"Machine: {result['machine']}; load average {', '.join(f'{x:.2f}' for x in result['load_average'])}")
    print(f"\nWhole processes: median of {args.rounds} interleaved rounds (after one warm-up run each)")
    print(f"{'command':<10} {'wall ms':>9} {'min ms':>8} {'max ms':>8} {'x floor':>8} {'CPU ms':>8} {'x floor':>8}")
    for name, row in result["processes"].items():
        print(f"{name:<10} {row['median_ms']:>9.1f} {row['min_ms']:>8.1f} {row['max_ms']:>8.1f} "
              f"{row['ratio_to_floor']:>8.2f} {row['cpu_median_ms']:>8.1f} {row['cpu_ratio_to_floor']:>8.2f}")
    print("  floor   = python -c \"import lxml.etree, click, pluggy, yaml\"  (target: others <= 1.30 x)")
    print(f"  create  = virtscenario create {args.scenario} --name b --print-xml --output DIR (validation cache warm)")
    print("  cold    = the same with VIRTSCENARIO_NO_CACHE=1 (the schema is compiled in every process)")

    ip = inproc
    print(f"\nIn process: {args.vms} VMs generated + validated with one Catalog in {ip['total_s']:.2f} s "
          f"({ip['per_vm_ms']:.2f} ms each; target < 1 s for 1000); catalog {1000 * ip['catalog_s']:.1f} ms, "
          f"first VM {1000 * ip['first_vm_s']:.1f} ms (schema load)")

    print(f"\nOne fresh process doing what 'create {args.scenario} --print-xml' does, phase by phase (median of 7):")
    for name, secs in phases:
        print(f"  {1000 * secs:7.1f} ms  {name}")
    print(f"  {1000 * sum(t for _n, t in phases):7.1f} ms  total (Python start-up not included)")

    print("\nImports of 'create': self time summed per top-level package (ms, median of 5):")
    for mod, us in result["imports_create_by_package_us"]:
        print(f"  {us / 1000:8.1f}  {mod}")
    print("\nImports of 'create', most expensive modules by self time (ms):")
    for mod, us in result["imports_create_top_self_us"]:
        print(f"  {us / 1000:8.1f}  {mod}")
    print("\nImports of '--version': self time summed per top-level package (ms):")
    for mod, us in result["imports_version_by_package_us"]:
        print(f"  {us / 1000:8.1f}  {mod}")


if __name__ == "__main__":
    main()
