"""Every use of Flower's and Opacus' internals, in one place, checked against the pinned versions.

FedMPT uses the public APIs of Flower (``flwr.app``, ``flwr.clientapp``, ``flwr.serverapp``,
``flwr.client``/``flwr.server`` for the legacy SecAgg+ path) and Opacus (``PrivacyEngine``,
``DPDataLoader``, ``DPOptimizer``, ``ModuleValidator``, the accountants). What is below relies on
non-public modules, private attributes or the current layout of a class; each item names what it
touches. An upgrade of either library must re-check this file (and only this file), so importing
it fails with a clear message unless the installed versions are exactly the pinned ones.

This module imports none of the project's packages, and may be loaded by file path
(:mod:`federation.deploy.fab_gate` does, so as not to pre-import the site's own copy of the
app's packages before the approved app bundle runs).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

PINNED = {"flwr": "1.41.0", "opacus": "1.6.0"}


class IncompatibleVersionError(ImportError):
    """An installed Flower or Opacus is not the version this code was checked against."""


def check_versions(pinned: dict[str, str] = PINNED) -> None:
    """Raise :class:`IncompatibleVersionError` unless each package is installed at its pinned version."""
    for package, expected in pinned.items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != expected:
            raise IncompatibleVersionError(
                f"FedMPT needs {package}=={expected} (it uses {package} internals, see "
                f"infra/compat.py), but {package} is {installed}: install the pinned version "
                f"(pip install '{package}=={expected}')"
            )


check_versions()

# -- Flower: types of the Grid interface that flwr.serverapp does not re-export ----------------
from flwr.proto.node_pb2 import NodeInfo  # noqa: E402  # pylint: disable=E0611
from flwr.supercore.run import Run  # noqa: E402

if TYPE_CHECKING:
    from flwr.app import Array
    from opacus.optimizers import DPOptimizer

__all__ = [
    "FEDOPT_MOMENT_ATTRIBUTES",
    "IncompatibleVersionError",
    "NodeInfo",
    "PINNED",
    "Run",
    "acquire_client_app_task",
    "build_fab",
    "check_versions",
    "hoist_scale_grad",
    "patch_sqlite_busy_timeout",
    "run_flower_superlink",
    "run_gated_clientapp",
    "runtime_client",
    "set_array_metadata",
]

# -- Flower: FedOpt strategies keep their server moments in these attributes ------------------
FEDOPT_MOMENT_ATTRIBUTES = ("m_t", "v_t")  # FedAdam/FedYogi/FedAdagrad, dicts of ndarrays


def set_array_metadata(target: Array, source: Array) -> None:
    """Give ``target`` the dtype, shape and stype of ``source`` without copying its bytes.

    ``Array.__init__`` needs the bytes; in 1.41 these three are plain attributes, set as its
    "direct" construction path does.
    """
    target.dtype, target.shape, target.stype = source.dtype, source.shape, source.stype


# -- Flower: the FAB as ``flwr run`` builds it -------------------------------------------------
def build_fab(app_dir: Path) -> bytes:
    """The FAB bytes ``flwr run`` would submit for ``app_dir`` (``flwr.cli.build``)."""
    from flwr.cli.build import build_fab_from_disk

    return bytes(build_fab_from_disk(Path(app_dir).resolve()))


# -- Flower: SuperLink process -----------------------------------------------------------------
def patch_sqlite_busy_timeout(milliseconds: int) -> tuple[tuple[str, str], ...]:
    """Replace the ``busy_timeout`` pragma Flower applies to every SQLite connection."""
    from flwr.supercore import constant, sql_mixin

    pragmas = tuple((name, str(milliseconds) if name == "busy_timeout" else value)
                    for name, value in constant.SQLITE_PRAGMAS)
    constant.SQLITE_PRAGMAS = pragmas  # type: ignore[misc]
    sql_mixin.SQLITE_PRAGMAS = pragmas  # type: ignore[attr-defined]
    return pragmas


def run_flower_superlink() -> int:
    """Run Flower's ``flower-superlink`` entry point in this process (arguments from sys.argv)."""
    from flwr.superlink.cli import flower_superlink

    return int(flower_superlink() or 0)


# -- Flower: a site's SuperExec loop and ClientApp process -------------------------------------
def runtime_client(runtime_api_address: str) -> Any:
    """A client of a SuperNode's local runtime API (as ``flower-superexec`` makes it)."""
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address, insecure=True, root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )


def acquire_client_app_task(client: Any) -> tuple[str, int, int] | None:
    """Acquire one pending ClientApp task: (token, task id, run id), or None when none waits."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
    from flwr.supercore.constant import TaskType

    response = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP],
                                                     agentapp_fab_hashes=[]))
    if not (response.HasField("task") and response.token):
        return None
    return str(response.token), int(response.task.task_id), int(response.task.run_id)


def run_gated_clientapp(
    gate: Callable[[Callable[..., Path]], Callable[..., Path]], *, runtime_api_address: str, token: str,
    root_certificates: str | None, insecure: bool, parent_pid: int | None,
) -> None:
    """Run Flower's ``flwr-clientapp`` for one task, with its FAB installation wrapped by ``gate``.

    ``gate`` receives Flower's ``install_from_fab(fab_file, install_dir=None, skip_prompt=False)
    -> Path`` and returns its replacement.
    """
    from flwr.supercore.tls import validate_and_resolve_root_certificates
    from flwr.supernode.runtime import run_clientapp as runtime

    runtime.install_from_fab = gate(runtime.install_from_fab)  # type: ignore[attr-defined]
    runtime.run_clientapp(
        runtime_api_address=runtime_api_address, token=token, insecure=insecure,
        certificates=validate_and_resolve_root_certificates(root_certificates, insecure),
        parent_pid=parent_pid, runtime_dependency_install=False,
    )


# -- Opacus ------------------------------------------------------------------------------------
def hoist_scale_grad(optimizer: DPOptimizer) -> None:
    """Same arithmetic as ``DPOptimizer.scale_grad``, without its O(P^2) Python loop.

    Opacus 1.6 re-evaluates ``accumulated_iterations`` (itself a loop over all parameters) once
    per parameter; with MedMPT's ~180 tensors that was ~9 % of a DP step's CPU time. Only
    done where ``scale_grad`` is Opacus' own (flat clipping optimizers).
    """
    from opacus.optimizers import DPOptimizer

    if type(optimizer).scale_grad is not DPOptimizer.scale_grad:
        return

    def scale_grad() -> None:
        if optimizer.loss_reduction == "mean":
            denominator = optimizer.expected_batch_size * optimizer.accumulated_iterations
            for p in optimizer.params:
                p.grad /= denominator

    optimizer.scale_grad = scale_grad  # type: ignore[method-assign]
