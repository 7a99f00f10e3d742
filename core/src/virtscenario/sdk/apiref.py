"""The API reference (``docs/api-reference.md``), generated from the docstrings of :mod:`virtscenario.api`.

``python -m virtscenario.sdk.apiref docs/api-reference.md`` rewrites the generated regions of the page
in place (between ``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated: NAME -->``); the prose
around them is written by hand. Without an argument it prints the regions. A test fails when the page
is stale, and when a public class, function, method or model record has no docstring of its own.

Regions: ``sections`` (what each section of the core writes, from the section modules' docstrings
and setting keys) and ``api`` (every name of ``virtscenario.api.__all__``, grouped, then every record
of ``virtscenario.api.model``: fields with types, defaults and comments, methods with signatures).
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

#: Sections of the ``api`` region: title -> names of ``virtscenario.api.__all__``, in reading order.
GROUPS: dict[str, tuple[str, ...]] = {
    "Version and the hook marker": ("API_VERSION", "__version__", "hookimpl"),
    "Scenarios and settings": ("Scenario", "Choice", "SettingSpec", "ResolvedSetting", "Layer", "LAYERS",
                               "Settings", "ResolvedScenario", "resolve_scenario", "parse_sets"),
    "What hooks receive and return": ("BuildContext", "Note", "DomainRule", "GuestCheck"),
    "The VM model": ("Domain", "model"),
    "Hosts: facts, checks and plans": ("HostRoot", "HostInfo", "HostCpu", "read_host", "parse_cpuinfo",
                                       "parse_cpulist", "format_cpulist", "housekeeping_split", "DomainCaps",
                                       "SevCaps", "HostCheck", "CheckResult", "CheckOutcome", "run_host_checks",
                                       "HostRequirement", "new_vm_requirements", "HostChange",
                                       "collect_host_plan", "HostDevices",
                                       "read_host_devices", "pci_problems", "resolve_host_uris"),
    "The VM store": ("store_root", "stored_vms", "read_vm", "StoredVm", "atomic_write"),
    "Commands (register_commands)": ("command_group", "host_root", "complete_scenarios", "format_table"),
    "Sizes": ("parse_size", "format_size"),
    "Errors": ("VirtscenarioError", "ConfigError", "PluginError"),
}
#: Placeholder docstring the record decorator gives a class without one.
_DEFAULT_DOC = re.compile(r"^\w+ record\.$")


# -- docstrings -> Markdown --------------------------------------------------------------------
_ROLE = re.compile(r":(class|func|meth|attr|data|mod|exc):`~?([^`]+)`")
_FIELD = re.compile(r"^:(param|parameter|return|returns|raises|raise)\s*([^:]*):\s*(.*)$")


def _role(match: re.Match[str]) -> str:
    kind, target = match.groups()
    for prefix in ("virtscenario.api.", "virtscenario."):
        if target.startswith(prefix) and kind != "mod":
            target = target[len(prefix):]
    return f"`{target}()`" if kind in ("func", "meth") else f"`{target}`"


def markdown(doc: Optional[str]) -> str:
    """A reST-flavoured docstring as Markdown: roles, ``literals``, ``:param:`` fields, ``::`` blocks."""
    if not doc or _DEFAULT_DOC.match(doc.strip()):
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        field = _FIELD.match(line)
        if field:
            kind, name, text = field.groups()
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                text += " " + lines[i].strip()
                i += 1
            label = {"param": f"`{name.strip()}`", "parameter": f"`{name.strip()}`", "return": "returns",
                     "returns": "returns", "raises": f"raises `{name.strip()}`", "raise": f"raises `{name.strip()}`"}
            out.append(f"- {label[kind]}: {_inline(text)}")
            continue
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            out.append(_inline(head + ":") if head else "")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            out += ["", "```python", textwrap.dedent("\n".join(block)).strip("\n"), "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _inline(text: str) -> str:
    text = _ROLE.sub(_role, text)
    text = text.replace("``", "`")
    return text.replace("\\\\", "\\")


# -- signatures ---------------------------------------------------------------------------------
def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return text.replace("typing.", "")


def signature(fn: Callable[..., Any], skip_self: bool = False) -> str:
    """``(a: int, b: str = 'x') -> bool``, with the source's annotations as written."""
    sig = inspect.signature(fn)
    parts: list[str] = []
    star_done = False
    for p in sig.parameters.values():
        if skip_self and p.name in ("self", "cls") and not parts:
            continue
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        stars = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        name = stars + p.name
        if p.kind is p.VAR_POSITIONAL:
            star_done = True
        ann = _annotation(p.annotation)
        text = f"{name}: {ann}" if ann else name
        if p.default is not p.empty:
            text += f" = {p.default!r}" if ann else f"={p.default!r}"
        parts.append(text)
    ret = _annotation(sig.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {ret}" if ret else "")


# -- records ------------------------------------------------------------------------------------
def _field_comments(cls: type) -> dict[str, str]:
    """Trailing ``# comment`` of each field line, and ``#:`` comments above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    out: dict[str, str] = {}
    above: list[str] = []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#:"):
            above.append(stripped[2:].strip())
            continue
        match = re.match(r"^\s+(\w+)\s*:", line)
        if match and not stripped.startswith(("def ", "@", "#", '"')):
            trailing = comments.get(number, "")
            trailing = trailing[1:].strip() if trailing.startswith("#") and not trailing.startswith("#:") else ""
            note = " ".join(above + ([trailing] if trailing else []))
            if note:
                out[match.group(1)] = note
        above = []
    return out


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:
        factory = f.default_factory
        name = getattr(factory, "__name__", repr(factory))
        return "`[]`" if factory is list else "`{}`" if factory is dict else f"`{name}()`"
    return "required"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def record_fields(cls: type) -> list[str]:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if not fields:
        return []
    comments = _field_comments(cls)
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        ann = f.type if isinstance(f.type, str) else _annotation(f.type)
        meaning = _inline(comments.get(f.name, ""))
        rows.append(f"| `{f.name}` | `{_cell(ann)}` | {_cell(_default(f))} | {_cell(meaning)} |")
    return rows


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties the class itself defines (not the record machinery)."""
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(value, (property, classmethod, staticmethod)) or inspect.isfunction(value):
            yield name, value


def members_markdown(cls: type) -> list[str]:
    out = []
    for name, value in _members(cls):
        if name == "__init__":
            continue
        if isinstance(value, property):
            ann = _annotation(inspect.signature(value.fget).return_annotation) if value.fget else ""
            head = f"`.{name}` → `{ann}` (property)" if ann else f"`.{name}` (property)"
            doc = value.fget.__doc__ if value.fget else None
        else:
            fn = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            kind = " (classmethod)" if isinstance(value, classmethod) else ""
            head = f"`.{name}{signature(fn, skip_self=not isinstance(value, staticmethod))}`{kind}"
            doc = fn.__doc__
        text = markdown(doc).replace("\n\n", "\n  ").replace("\n", "\n  ")
        out.append(f"- {head}" + (f": {text}" if text else ""))
    return out


def is_record(cls: type) -> bool:
    from ..records import Record
    return dataclasses.is_dataclass(cls) and issubclass(cls, Record)


def class_markdown(name: str, cls: type, qualifier: str = "virtscenario.api") -> list[str]:
    from ..records import FrozenRecord
    out = [f"### `{name}`", ""]
    if is_record(cls):
        kind = "frozen record (immutable, hashable)" if issubclass(cls, FrozenRecord) else "record (mutable)"
        names = ", ".join(f.name for f in dataclasses.fields(cls) if f.init)
        out += [f"`{qualifier}.{name}({names})`: {kind}, built by keyword or position.", ""]
    elif isinstance(cls, type) and issubclass(cls, BaseException):
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        out += [f"Exception, a subclass of {bases}.", ""]
    else:
        init = cls.__dict__.get("__init__")
        sig = signature(init, skip_self=True) if init else "()"
        out += [f"`{qualifier}.{name}{sig.split(' -> ')[0]}`", ""]
    doc = markdown(cls.__dict__.get("__doc__"))
    if doc:
        out += [doc, ""]
    if is_record(cls):
        rows = record_fields(cls)
        if rows:
            out += rows + [""]
    members = members_markdown(cls)
    if members:
        out += members + [""]
    return out


def function_markdown(name: str, fn: Callable[..., Any]) -> list[str]:
    out = [f"### `{name}()`", "", f"`virtscenario.api.{name}{signature(fn)}`", ""]
    doc = markdown(fn.__doc__)
    if doc:
        out += [doc, ""]
    return out


def _value_markdown(name: str, value: Any) -> list[str]:
    import virtscenario
    if name == "hookimpl":
        doc = "The marker of hook implementations: `@hookimpl`, or `@hookimpl(tryfirst=True)`, " \
              "`@hookimpl(trylast=True)`, `@hookimpl(wrapper=True)` (pluggy's options). A function named like " \
              "a hook without it is never called (and `plugins list` warns)."
        return [f"### `{name}`", "", doc, ""]
    if name == "API_VERSION":
        text = _module_comment(virtscenario, "API_VERSION")
        return [f"### `{name}`", "", f"`{value!r}`. {text}", ""]
    if name == "__version__":
        return [f"### `{name}`", "", "The core's version (a string such as `\"0.1.0\"`); plugins depend on "
                "`virtscenario>=MAJOR.MINOR,<MAJOR+1`.", ""]
    if name == "LAYERS":
        from ..settings import types as st
        return [f"### `{name}`", "", f"`{value!r}`. {_module_comment(st, 'Layer')}", ""]
    if name == "Layer":
        return [f"### `{name}`", "", "The type of `ResolvedSetting.layer`: one of the strings of `LAYERS`.", ""]
    raise KeyError(name)


def _module_comment(module: Any, name: str) -> str:
    """The ``#:`` comment lines above ``name = ...`` in ``module``'s source."""
    lines = inspect.getsource(module).splitlines()
    for index, line in enumerate(lines):
        if re.match(rf"^{re.escape(name)}\s*[:=]", line):
            above: list[str] = []
            j = index - 1
            while j >= 0 and lines[j].startswith("#:"):
                above.insert(0, lines[j][2:].strip())
                j -= 1
            return _inline(" ".join(above))
    return ""


def _entry(name: str) -> list[str]:
    from .. import api
    value = getattr(api, name)
    if name == "model":
        return _model_markdown(value)
    if inspect.isclass(value):
        return class_markdown(name, value)
    if inspect.isfunction(value):
        return function_markdown(name, value)
    return _value_markdown(name, value)


def _model_markdown(model: Any) -> list[str]:
    out = ["### `model`", "", "`from virtscenario.api import model`: the element records of `Domain`, "
           "for `customize_model` and rules (`model.Watchdog(\"i6300esb\", \"reset\")`). " + markdown(model.__doc__),
           ""]
    for name in sorted(model.__all__, key=str.lower):
        if name == "Domain":
            continue
        lines = class_markdown(name, getattr(model, name), "virtscenario.api.model")
        out += ["#" + lines[0].replace(f"`{name}`", f"`model.{name}`")] + lines[1:]
    return out


def api_region() -> str:
    from .. import api
    listed = [n for names in GROUPS.values() for n in names]
    missing = sorted(set(api.__all__) - set(listed))
    extra = sorted(set(listed) - set(api.__all__))
    if missing or extra:
        raise RuntimeError(f"apiref.GROUPS is out of date: not listed {missing}, not in api.__all__ {extra}")
    out = ["Contents:", ""]
    for title, names in GROUPS.items():
        anchors = ", ".join(f"[`{n}`](#{_anchor(n, api)})" for n in names)
        out.append(f"- **{title}**: {anchors}")
    out.append("")
    for title, names in GROUPS.items():
        out += [f"## {title}", ""]
        for name in names:
            out += _entry(name)
    return "\n".join(out).rstrip() + "\n"


def _anchor(name: str, api: Any) -> str:
    value = getattr(api, name)
    shown = f"{name}()" if inspect.isfunction(value) else name
    return re.sub(r"[^a-z0-9_ -]", "", shown.lower()).replace(" ", "-")


def sections_region() -> str:
    """What each section module of the core writes, and the setting keys it owns."""
    from ..domain import sections
    rows = ["| section | what it decides | elements it writes | setting keys |", "|---|---|---|---|"]
    for module in sections.SECTIONS:
        doc = inspect.cleandoc(module.__doc__ or "")
        paragraphs = [p.replace("\n", " ") for p in doc.split("\n\n")]
        what = _inline(paragraphs[0])
        elements = _inline(paragraphs[1]) if len(paragraphs) > 1 else ""
        keys = sorted(spec.key for spec in module.SPECS)
        prefixes = sorted({k.split(".")[0] + ".*" if sum(1 for x in keys if x.split(".")[0] == k.split(".")[0]) > 2
                           else k for k in keys})
        name = module.__name__.rsplit(".", 1)[-1]
        owned = ", ".join(f"`{p}`" for p in prefixes)
        rows.append(f"| `{name}` | {_cell(what)} | {_cell(elements)} | {_cell(owned)} |")
    return "\n".join(rows) + "\n"


REGIONS: dict[str, Callable[[], str]] = {"sections": sections_region, "api": api_region}


def update(text: str) -> str:
    """``text`` with every generated region rewritten."""
    for name, make in REGIONS.items():
        begin = f"<!-- BEGIN generated: {name} -->"
        end = f"<!-- END generated: {name} -->"
        if begin not in text or end not in text:
            raise RuntimeError(f"the page has no {begin} ... {end} region")
        head, rest = text.split(begin, 1)
        _old, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{make()}{end}{tail}"
    return text


def undocumented() -> list[str]:
    """Public classes, records, functions and methods of the API without a docstring of their own."""
    from .. import api
    from ..domain import model
    missing = []
    objects = [(n, getattr(api, n)) for n in api.__all__] + [(f"model.{n}", getattr(model, n)) for n in model.__all__]
    for name, value in objects:
        if inspect.isclass(value):
            if not markdown(value.__dict__.get("__doc__")):
                missing.append(name)
            for member, attr in _members(value):
                if member == "__init__":
                    continue
                fn = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
                if not (fn and fn.__doc__):
                    missing.append(f"{name}.{member}")
        elif inspect.isfunction(value) and not value.__doc__:
            missing.append(name)
    return missing


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        for name, make in REGIONS.items():
            print(f"<!-- BEGIN generated: {name} -->\n{make()}<!-- END generated: {name} -->")
        return 0
    path = Path(args[0])
    path.write_text(update(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
