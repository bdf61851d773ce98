"""What a ``fedmpt`` command says when it cannot do its job, and the exit code that goes with it.

A command raises a :class:`CliError` subclass for a failure a person can fix (a missing
folder, a server that is down, a refused budget); the entry point (:func:`cli.main.main`)
prints its one- or two-line message and exits with the class's code. Expected failures of the
libraries underneath (a missing file, a Flower command that could not connect, a budget the
ledger refuses) are translated by :func:`as_cli_error`. Anything else is a bug: it keeps its
traceback. ``fedmpt --verbose`` shows the traceback of every failure.

Exit codes (``fedmpt --help`` lists them too):

== ===============================================================================
1  the run finished but did not do what was asked (sites refused, quorum not met)
2  wrong command-line usage (click's own)
3  a file or folder is missing
4  something already exists that the command would overwrite
5  a configuration value or input file is invalid
6  a server (SuperLink, Fleet proxy) cannot be reached
7  credentials, a certificate or a signature were refused, or file access denied
8  a privacy budget refuses the work
9  too few sites are online and approved to start
70 a bug in FedMPT (traceback printed)
== ===============================================================================
"""

from __future__ import annotations

import ssl
from pathlib import Path

EXIT_BUG = 70
_PROJECT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """A failure a person can act on: ``message`` names the file or value, ``hint`` the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The one or two lines printed to standard error."""
        return [f"error: {self.message}"] + ([f"  fix: {self.hint}"] if self.hint else [])


class RunFailed(CliError):
    """The run ended, but the sites did not do what was asked."""

    exit_code = 1


class MissingInput(CliError):
    """A file or folder the command needs does not exist."""

    exit_code = 3


class AlreadyExists(CliError):
    """The command would overwrite something that exists."""

    exit_code = 4


class BadValue(CliError):
    """A configuration value or an input file is invalid."""

    exit_code = 5


class Unreachable(CliError):
    """A server the command talks to does not answer."""

    exit_code = 6


class AccessRefused(CliError):
    """Credentials, a certificate, a signature or file permissions were refused."""

    exit_code = 7


class BudgetRefused(CliError):
    """A site's privacy budget does not allow the work."""

    exit_code = 8


class NotEnoughSites(CliError):
    """Fewer sites than needed are online and approved."""

    exit_code = 9


_UNREACHABLE_MARKERS = ("connection refused", "failed to connect", "unavailable", "connecterror",
                        "max retries", "name or service not known", "timed out")


def _raised_in_project(error: BaseException) -> bool:
    """Whether the innermost frame that raised ``error`` is FedMPT code (not a library's)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    return _PROJECT in path.parents and ".venv" not in path.parts


def _flower_error(error: Exception) -> CliError:
    text = str(error)
    if any(marker in text.lower() for marker in _UNREACHABLE_MARKERS):
        first = next((line for line in text.splitlines() if line.strip()), text)
        return Unreachable(f"the SuperLink does not answer ({first.strip()[:160]})",
                           "start it on the aggregator host: fedmpt aggregator start DIR")
    return RunFailed(text.strip().splitlines()[-1][:300] if text.strip() else type(error).__name__)


def as_cli_error(error: BaseException) -> CliError | None:
    """The user-facing form of an expected failure; None for a bug (keep its traceback)."""
    from aggregator.checkpoints import CheckpointError
    from aggregator.quorum import QuorumNotMet, SecureAggregationHalted
    from client_site.pacs.errors import PacsAccessRefused, PacsConfigError, PacsError, PacsUnavailable
    from infra.signatures import SignatureError
    from federation.deploy.flower_cli import FlowerCommandError
    from federation.simulation import FederatedRunError
    from privacy.errors import BudgetExceededError, PrivacyError

    if isinstance(error, CliError):
        return error
    if isinstance(error, (CheckpointError, SignatureError)):
        return AccessRefused(str(error), "use the model and key the aggregator published")
    if isinstance(error, BudgetExceededError):
        return BudgetRefused(str(error), "see the site's ledger: fedmpt privacy ledger SITE_DIR")
    if isinstance(error, (QuorumNotMet, SecureAggregationHalted)):
        return RunFailed(f"the run failed: {error}", "see each site's reason: fedmpt rounds results WORKDIR")
    if isinstance(error, FederatedRunError):
        return RunFailed(str(error), "see each site's reason: fedmpt rounds results WORKDIR --run NAME")
    if isinstance(error, PacsConfigError):
        return BadValue(str(error))
    if isinstance(error, PacsAccessRefused):
        return AccessRefused(str(error))
    if isinstance(error, PacsUnavailable):
        return Unreachable(str(error))
    if isinstance(error, PacsError):
        return RunFailed(str(error))
    if isinstance(error, FlowerCommandError):
        return _flower_error(error)
    if isinstance(error, ssl.SSLError):
        return AccessRefused(f"TLS refused: {error}", "check the bundle's ca.crt and the address")
    if isinstance(error, FileExistsError):
        return AlreadyExists(*_os_message(error, "choose another name or remove it first"))
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return MissingInput(*_os_message(error, "check the path"))
    if isinstance(error, PermissionError):
        return AccessRefused(*_os_message(error, "run as the user that owns it, or fix its mode"))
    if isinstance(error, (PrivacyError, ValueError, KeyError)) and _raised_in_project(error):
        return BadValue(str(error).strip("'\""))
    return None


def _os_message(error: OSError, hint: str) -> tuple[str, str]:
    """Our own message as it is (it names the fix); the OS's as "PATH: reason" and ``hint``."""
    if error.filename is None:
        return str(error), ""
    return f"{error.filename}: {(error.strerror or str(error)).lower()}", hint
