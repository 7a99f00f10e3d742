from __future__ import annotations

import pytest
from virtscenario.errors import ConfigError
from virtscenario.units import GIB, KIB, MIB, format_size, parse_size


@pytest.mark.parametrize("text, unit, expected", [
    ("4GiB", "MiB", 4 * GIB), ("4096MiB", "MiB", 4 * GIB), ("512M", "MiB", 512 * MIB), ("4G", "MiB", 4 * GIB),
    ("2048", "MiB", 2 * GIB), (2048, "MiB", 2 * GIB), ("20", "GiB", 20 * GIB), ("1.5G", "MiB", 3 * GIB // 2),
    ("1 GiB", "MiB", GIB), ("4g", "MiB", 4 * GIB), ("1KB", "MiB", 1000), ("1MB", "MiB", 1000**2),
    ("2GB", "MiB", 2 * 1000**3), ("1T", "MiB", 1024**4), ("2048", "KiB", 2 * MIB), ("512K", "MiB", 512 * KIB),
    ("100B", "MiB", 100), ("100bytes", "MiB", 100),
])
def test_parse_size(text, unit, expected):
    assert parse_size(text, unit) == expected


@pytest.mark.parametrize("text, message", [
    ("", "is not a size"), ("four", "is not a size"), ("-1G", "is not a size"), ("4 X", "unknown unit"),
    ("0", "greater than zero"), ("1.5B", "whole number of bytes"), (True, "expected a size"), (None, "expected a size"),
    ("4GiBs", "unknown unit"),
])
def test_parse_size_errors_are_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_size(text, "MiB", what="vm.memory")
    assert "\n" not in str(info.value) and str(info.value).startswith("vm.memory")


def test_format_size():
    assert [format_size(n) for n in (4 * GIB, 1536 * MIB, 4 * KIB, 1000, 1024**4)] == \
        ["4GiB", "1536MiB", "4KiB", "1000B", "1TiB"]
