"""Errors the model zoo raises; each message says what failed and what the user can do."""

from __future__ import annotations


class ZooError(RuntimeError):
    """Base class: a model could not be listed, fetched, converted or loaded."""


class UnknownModelError(ZooError, KeyError):
    """A model name that is not in the registry (the message lists close names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NetworkError(ZooError):
    """A server could not be reached (DNS, refused connection, timeout)."""


class HTTPStatusError(ZooError):
    """A server answered with an HTTP error status (``code``), e.g. 404 for a missing file."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class SourceError(ZooError):
    """One source could not provide the model (bad package, missing file, converter failure)."""


class OfflineError(ZooError):
    """Network access was needed but offline mode is on."""


class ChecksumError(ZooError):
    """A downloaded or cached file does not match its expected SHA-256."""


class DiskFullError(ZooError):
    """Writing failed because the disk is full (ENOSPC)."""


class LockTimeoutError(ZooError):
    """Another process held the model's lock for too long."""


class AllSourcesFailed(ZooError):
    """Every source of a model failed; ``failures`` holds (source description, reason) pairs."""

    def __init__(self, name: str, failures: list[tuple[str, str]]):
        self.name = name
        self.failures = failures
        lines = [f"could not fetch model '{name}'; every source failed:"]
        lines += [f"  - {where}: {why}" for where, why in failures]
        super().__init__("\n".join(lines))
