"""One error type per kind of input, each naming the input and what is wrong with it.

The appliance must tell a device team or a clinician exactly which file, key or field is bad;
a bare ``ValueError`` from deep inside numpy does not.
"""

from __future__ import annotations

import os


class EdgeEcgError(Exception):
    """Base of every error the appliance raises on purpose."""


class InputError(EdgeEcgError, ValueError):
    """Bad input: carries what the input is (a path, a key) and what is wrong with it."""

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = os.fspath(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class RecordError(InputError):
    """An ECG record that cannot be read: missing, truncated, unknown format, bad field."""


class BundleError(InputError):
    """A model bundle that is missing, tampered with, truncated or inconsistent."""


class ConfigError(InputError):
    """A configuration key with a bad value; ``source`` names the file and key."""


class SignatureError(BundleError):
    """A bundle whose signature is missing, malformed, by an untrusted key, or does not verify."""
