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

_setattr = object.__setattr__

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


def _spec(cls: type) -> tuple[tuple[tuple[str, Any, Any], ...], Any]:
    """((name, default, default_factory) per init field, __post_init__), cached on the class."""
    spec = cls.__dict__.get("_record_spec")
    if spec is None:
        fields = tuple((f.name, f.default, f.default_factory)
                       for f in cls.__dataclass_fields__.values() if f.init)  # type: ignore[attr-defined]
        spec = (fields, getattr(cls, "__post_init__", None))
        type.__setattr__(cls, "_record_spec", spec)
    return spec


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in obj.__dataclass_fields__)


class Record:
    """Mutable record: keyword or positional init with defaults, value equality, unhashable."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields, post = _spec(type(self))
        if not kwargs and len(args) == len(fields):  # fast path: every field given positionally
            for (name, _d, _f), value in zip(fields, args):
                _setattr(self, name, value)
        else:
            if len(args) > len(fields):
                raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional arguments, "
                                f"got {len(args)}")
            for i, (name, default, factory) in enumerate(fields):
                if i < len(args):
                    if name in kwargs:
                        raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
                    value = args[i]
                elif name in kwargs:
                    value = kwargs.pop(name)
                elif default is not MISSING:
                    value = default
                elif factory is not MISSING:
                    value = factory()
                else:
                    raise TypeError(f"{type(self).__name__}() missing required argument {name!r}")
                _setattr(self, name, value)
            if kwargs:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                                f"{next(iter(kwargs))!r}")
        if post is not None:
            post(self)

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
