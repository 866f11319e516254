"""Typed exceptions and warnings of the datadam API.

Every error that bad input can cause is a :class:`DatadamError`; the CLI turns it
into one line on stderr and a non-zero exit, never a traceback. A
:class:`DatadamWarning` is printed as one ``warning: ...`` line and the work goes on.
"""

from __future__ import annotations


class DatadamError(Exception):
    """Base class of every error datadam raises on purpose."""


class UnknownNameError(DatadamError, KeyError):
    """A registry (datasets, models, methods) was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, available: list[str], hint: str = ""):
        self.kind, self.name, self.available = kind, name, list(available)
        why = f" ({hint})" if hint else ""
        super().__init__(f"unknown {kind} {name!r}{why}; available: {', '.join(self.available)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataNotFoundError(DatadamError, FileNotFoundError):
    """The files of a dataset are not where they were looked for."""


class DataFormatError(DatadamError, ValueError):
    """A dataset's files exist but are malformed; ``problems`` lists every one found."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems) if problems else [message]
        super().__init__(message)


class DataTypeError(DatadamError, TypeError):
    """An object given as data is none of the kinds datadam accepts; the message names them."""


class ConfigError(DatadamError, ValueError):
    """An argument is out of range or inconsistent with another (IPC, depth, sizes...)."""


class Interrupted(DatadamError):
    """A long run was stopped by Ctrl-C; the message says what was kept and how to go on."""


class DistillationInterrupted(Interrupted):
    """A run was stopped by Ctrl-C after saving a checkpoint it can resume from."""


class DivergenceError(DatadamError, ArithmeticError):
    """The loss became NaN or infinite; the last good state was kept."""


class MissingDependencyError(DatadamError, ImportError):
    """An optional feature needs a package that is not installed; the message says which."""


class DatadamWarning(UserWarning):
    """Base class of the warnings datadam gives; the CLI prints each as one ``warning:`` line."""
