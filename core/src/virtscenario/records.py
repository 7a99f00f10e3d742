"""Cheap dataclasses: the model and the public types without per-class generated code.

``@dataclass`` compiles ``__init__``, ``__eq__``, ``__repr__`` (and for frozen
classes ``__setattr__``, ``__delattr__``, ``__hash__``) for every class at import
time, ~0.5 ms each here; with ~60 classes that was a quarter of a
``create --print-xml`` run. These bases implement the same behaviour once, from
``__dataclass_fields__``: ``dataclasses.fields``, ``replace`` and ``asdict`` keep working.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import MISSING, Field, FrozenInstanceError, field
from typing import Any, Callable, TypeVar

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - type checkers only
    def dataclass_transform(**_kw: Any) -> Callable[[Any], Any]:
        return lambda f: f

_T = TypeVar("_T", bound=type)


@dataclass_transform(field_specifiers=(field,))
def record(cls: _T) -> _T:
    """Declare a record: the class's annotated attributes become its fields, as with @dataclass.

    ``dataclasses.dataclass`` spends most of its time deciding, for every string annotation,
    whether it names ``ClassVar``/``InitVar`` (records use neither); this builds the same
    ``__dataclass_fields__`` directly, so ``dataclasses.fields``, ``replace`` and ``asdict``
    keep working.
    """
    fields: dict[str, Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update(getattr(base, "__dataclass_fields__", {}))
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        default = cls.__dict__.get(name, MISSING)
        f = default if isinstance(default, Field) else field(default=default)
        f.name, f.type = name, annotation
        f._field_type = dataclasses._FIELD  # type: ignore[attr-defined,union-attr]
        if f.kw_only is MISSING:
            f.kw_only = False
        if isinstance(default, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        if f.default is not MISSING and f.default.__class__.__hash__ is None:
            raise ValueError(f"{cls.__name__}.{name}: mutable default {type(f.default).__name__}; "
                             "use field(default_factory=...)")
        fields[name] = f
    cls.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    cls.__dataclass_params__ = _params()  # type: ignore[attr-defined]
    if cls.__doc__ is None:
        cls.__doc__ = f"{cls.__name__} record."
    return cls


def _params() -> Any:
    """dataclass(init=False, eq=False, repr=False) parameters, for code that inspects them."""
    global _PARAMS_CACHE
    if _PARAMS_CACHE is None:
        names = dataclasses._DataclassParams.__init__.__code__.co_varnames[1:]  # type: ignore[attr-defined]
        values = {"init": False, "repr": False, "eq": False, "order": False, "unsafe_hash": False,
                  "frozen": False, "match_args": True, "kw_only": False, "slots": False,
                  "weakref_slot": False}
        _PARAMS_CACHE = dataclasses._DataclassParams(  # type: ignore[attr-defined]
            *[values[n] for n in names if n in values])
    return _PARAMS_CACHE


_PARAMS_CACHE: Any = None


frozen_record = record


class _Spec:
    """What ``Record.__init__`` needs of a class, computed on its first instance (see ``_SPECS``)."""

    __slots__ = ("names", "nameset", "defaults", "factories", "post")

    def __init__(self, cls: type) -> None:
        fields = [f for f in cls.__dataclass_fields__.values() if f.init]  # type: ignore[attr-defined]
        self.names = tuple(f.name for f in fields)
        self.nameset = frozenset(self.names)
        self.defaults = {f.name: f.default for f in fields if f.default is not MISSING}
        self.factories = tuple((f.name, f.default_factory) for f in fields
                               if f.default is MISSING and f.default_factory is not MISSING)
        self.post = getattr(cls, "__post_init__", None)


# Keyed by the exact class: a subclass has fields of its own, so nothing is inherited.
_SPECS: dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _Spec(cls)
    return spec


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in obj.__dataclass_fields__)


class Record:
    """Mutable record: keyword or positional init with defaults, value equality, unhashable."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Dict operations instead of a per-field loop: records are most of what building a
        # VM allocates (~70 per VM); this took ~40 % off __init__'s own time in the profile.
        spec = _SPECS.get(type(self)) or _spec(type(self))
        names = spec.names
        values = dict(spec.defaults)
        if args:
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__}() takes {len(names)} positional arguments, "
                                f"got {len(args)}")
            if kwargs:
                for name in names[:len(args)]:
                    if name in kwargs:
                        raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values.update(zip(names, args))
        if kwargs:
            values.update(kwargs)
        for name, factory in spec.factories:
            if name not in values:
                values[name] = factory()
        if len(values) != len(names) or (kwargs and not spec.nameset.issuperset(kwargs)):
            for name in names:
                if name not in values:
                    raise TypeError(f"{type(self).__name__}() missing required argument {name!r}")
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{next(k for k in kwargs if k not in spec.nameset)!r}")
        # The instance dict directly: a frozen record's __setattr__ refuses, and no field is
        # a descriptor (record() turns every annotated attribute into a plain field).
        self.__dict__.update(values)
        if spec.post is not None:
            spec.post(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)  # type: ignore[attr-defined]
        return f"{type(self).__name__}({fields})"


class FrozenRecord(Record):
    """Immutable record: assignment raises FrozenInstanceError; hashable by value."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(_values(self))
