"""``fedmpt site ...``: a hospital's set-up: its budget, its SuperNode, the app bundles it approves."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from cli import pacs_options as pacs
from cli.errors import AlreadyExists, MissingInput, RunFailed
from cli.foreground import serve_until_signal

site_app = typer.Typer(help="Site (hospital) set-up.", no_args_is_help=True)


@site_app.command("init")
def site_init(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory."),
    name: str = typer.Option(..., help="Site name shown to the consortium."),
    epsilon: float = typer.Option(..., help="The site's cumulative epsilon budget over all runs."),
    delta: float = typer.Option(1e-5, help="The site's fixed delta (well below 1/patients)."),
    accountant: str = typer.Option("rdp", help="Accountant that prices the ledger: rdp or prv."),
) -> None:
    """Write the site's own config (name and privacy budget) to SITE_DIR/site.toml."""
    from client_site.site_config import write_site_config

    try:
        path = write_site_config(site_dir, name=name, epsilon=epsilon, delta=delta,
                                 accountant=accountant)
    except FileExistsError:
        raise AlreadyExists(f"{site_dir}/site.toml exists", "edit it by hand to change the budget") from None
    typer.echo(f"wrote {path}")


def _preflight(site_dir: Path, bundle: Path, superlink: str | None):  # noqa: ANN202
    """Run the site's preflight checks, printing each passed one; raise the first failure."""
    from cli.errors import AccessRefused, BadValue, BudgetRefused, Unreachable
    from federation.deploy import site_check

    kinds = {site_check.MISSING: MissingInput, site_check.INVALID: BadValue,
             site_check.BUDGET: BudgetRefused, site_check.UNREACHABLE: Unreachable,
             site_check.REFUSED: AccessRefused}
    try:
        return site_check.check_site(site_dir, bundle, superlink=superlink,
                                     report=lambda line: typer.echo(f"ok  {line}"))
    except site_check.PreflightError as e:
        raise kinds[e.kind](e.message, e.hint) from None


@site_app.command("start")
def site_start(
    bundle: Path = typer.Argument(..., help="The site bundle from `fedmpt consortium add-site`."),
    data: Path = typer.Option(..., "--data", help="The site directory (site.toml, cache/)."),
    runtime_port: int = typer.Option(9094, help="Loopback port of the SuperNode's runtime API."),
    superlink: str = typer.Option("", help="Override the bundle's Fleet address (HOST:PORT)."),
) -> None:
    """Check the site, run its SuperNode (approved app bundles only) and print each task's outcome."""
    from client_site.layout import SiteLayout
    from client_site.site_config import load_site_config
    from federation.deploy.processes import start_site
    from federation.deploy.site_watch import SiteWatch
    from privacy.ledger import PrivacyLedger

    found = _preflight(data, bundle, superlink or None)
    config = load_site_config(data)
    logs = Path(bundle).resolve() / "logs"  # appended to: follow only what this start writes
    offsets = {p: p.stat().st_size for p in logs.glob("*.log")} if logs.is_dir() else {}
    processes = start_site(bundle, data, runtime_port=runtime_port, superlink=superlink or None)
    typer.echo(f"SuperNode pid {processes.supernode.pid}, gated executor pid {processes.executor.pid}; "
               f"logs in {processes.supernode.log_path.parent}")

    def ledger() -> tuple[float, dict[str, object] | None] | None:
        try:
            book = PrivacyLedger(SiteLayout(data).ledger_path, mechanism=config.accountant)
        except (OSError, ValueError):
            return None
        segments = [e for e in book.entries if e["event"] == "segment_started"]
        return book.epsilon(delta=config.budget.delta), (segments[-1] if segments else None)

    watch = SiteWatch(found.bundle_site, processes.supernode.log_path, processes.executor.log_path,
                      ledger, offsets)
    serve_until_signal(processes.stop, [processes.supernode, processes.executor],
                       on_tick=lambda: [typer.echo(line) for line in watch.poll()])


@site_app.command("approve")
def site_approve(
    fab_hash: str = typer.Argument(..., help="SHA-256 of the app bundle (FAB) to allow."),
    bundle: Path = typer.Option(Path("."), help="The site bundle holding approved_fabs.txt."),
    note: str = typer.Option("", help="Free text kept next to the hash (e.g. who reviewed it)."),
    withdraw: bool = typer.Option(False, help="Remove the hash instead."),
) -> None:
    """Allow (or withdraw) an app bundle on this site."""
    from federation.deploy import approval
    from federation.deploy.consortium import BUNDLE_FILE

    if not (bundle / BUNDLE_FILE).is_file():
        raise MissingInput(f"{bundle} is not a site bundle (no {BUNDLE_FILE})",
                           "pass --bundle the folder `fedmpt consortium add-site` made for this site")
    if withdraw:
        changed = approval.withdraw(bundle, fab_hash)
        typer.echo("withdrawn" if changed else "was not approved")
        return
    changed = approval.approve(bundle, fab_hash, note=note)
    typer.echo("approved" if changed else "already approved")


@site_app.command("pull")
def site_pull(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory (site.toml with [pacs], secrets/)."),
    dicomweb: str = pacs.DICOMWEB,
    dimse: str = pacs.DIMSE,
    called_aet: str = pacs.CALLED_AET,
    calling_aet: str = pacs.CALLING_AET,
    user: str = pacs.USER,
    since: str = typer.Option("", "--since", metavar="DATE", help="Only studies from this date (YYYY-MM-DD)."),
    limit: int = typer.Option(None, "--limit", help="Retrieve at most N studies this time."),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Only retrieve; do not run the ingest after."),
    preset: str = typer.Option("demo", help="Model preset whose input grid to ingest to."),
    workers: int = typer.Option(None, "--workers", min=1, help="Processes reading files and building volumes "
                                "(default: one per CPU core)."),
) -> None:
    """Retrieve the CT studies not yet here from the hospital PACS into SITE_DIR/dicom/pacs/, then ingest.

    Read-only towards the PACS. Re-runs retrieve only what is new; a study that fails is listed with
    the PACS's error and retried next time (exit 1).
    """
    from client_site.pacs import load_pacs_config, pull_site

    _quiet_pynetdicom()
    overrides = pacs.pacs_overrides(dicomweb=dicomweb, dimse=dimse, called_aet=called_aet,
                                    calling_aet=calling_aet, user=user, study_date_from=since, max_studies=limit)
    result = pull_site(site_dir, load_pacs_config(site_dir, **overrides))
    typer.echo(json.dumps(result.summary(), indent=2))
    if not no_ingest:
        from cli.ingest import ingest

        ingest(site_dir, out=None, preset=preset, qa=False, workers=workers)
    if result.failures:
        raise RunFailed(f"{len(result.failures)} study/studies could not be retrieved (listed above with the "
                        "PACS's error)", "the next `fedmpt site pull` retries them")


@site_app.command("check")
def site_check(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory (site.toml, cache/)."),
    bundle: Path = typer.Option(None, "--bundle", help="The site bundle: also check it and the SuperLink "
                                                      "(what `fedmpt site start` checks first)."),
    superlink: str = typer.Option("", help="With --bundle: override its Fleet address (HOST:PORT)."),
    dicomweb: str = pacs.DICOMWEB,
    dimse: str = pacs.DIMSE,
    called_aet: str = pacs.CALLED_AET,
    calling_aet: str = pacs.CALLING_AET,
    user: str = pacs.USER,
) -> None:
    """Check the PACS connection (C-ECHO or one QIDO-RS search; retrieves nothing) and, with
    --bundle, what `fedmpt site start` needs: site.toml, cache and preset, budget, bundle, SuperLink (TLS)."""
    from client_site.pacs import check_pacs, load_pacs_config

    if bundle is not None:
        _preflight(site_dir, bundle, superlink or None)
    if bundle is None or _has_pacs_table(site_dir) or dicomweb or dimse:
        _quiet_pynetdicom()
        overrides = pacs.pacs_overrides(dicomweb=dicomweb, dimse=dimse, called_aet=called_aet,
                                        calling_aet=calling_aet, user=user)
        typer.echo(f"ok: {check_pacs(site_dir, load_pacs_config(site_dir, **overrides))}")
    if bundle is not None:
        typer.echo("ready: `fedmpt site start` will connect")


def _has_pacs_table(site_dir: Path) -> bool:
    import tomllib

    return "pacs" in tomllib.loads((site_dir / "site.toml").read_text(encoding="utf-8"))


def _quiet_pynetdicom() -> None:
    """pynetdicom logs each refused association as an error; the pull reports it in one line itself."""
    if not logging.getLogger("client_site").isEnabledFor(logging.DEBUG):  # --verbose keeps its log
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
