"""Mistakes in the user's input, told apart from bugs.

A corpus, manifest, audio, config or weights problem raises a subclass of `UserError` whose
message names the file and the problem; `ser_fcn.cli.main` prints it as one `error: ...` line
and exits non-zero, with no traceback (`--debug` or SER_FCN_DEBUG=1 shows it). Any other
exception is a bug and keeps its traceback. The subclasses also derive from the built-in type
they replace (ValueError, FileNotFoundError), so `except ValueError` callers keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave (a file, a folder, a setting) cannot be used; the message says which and why."""


class ConfigError(UserError, ValueError):
    """Settings that contradict each other or do not fit the corpus (e.g. a fold out of range)."""


class CorpusNotFoundError(UserError, FileNotFoundError):
    """A corpus folder that does not exist or does not hold the corpus expected."""
