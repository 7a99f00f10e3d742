"""Exceptions that the CLI turns into one ``Error: ...`` line and exit 1."""

from __future__ import annotations


class VirtscenarioError(Exception):
    """A failure the user can act on; the message is shown as one line."""


class ConfigError(VirtscenarioError):
    """Bad user input: a setting, a file, a size, a name."""


class UsageError(ConfigError):
    """The command line itself is malformed (exit status 2, like click's usage errors)."""

    exit_code = 2


class ValidationError(VirtscenarioError):
    """The generated domain breaks the schema or a semantic rule."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class PluginError(VirtscenarioError):
    """A plugin is broken or two plugins conflict in a way that cannot be resolved."""


class LibvirtError(VirtscenarioError):
    """libvirt refused something (connection, define, start)."""
