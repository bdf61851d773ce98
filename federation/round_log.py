"""What rounds a site has taken part in, per run: refuses replays and rollbacks.

Kept in ``SITE_DIR/federation/rounds_seen.json`` (written atomically, under a file lock so that
the ClientApps of two runs never lose each other's entries). Per run it holds the newest round
the site acted on and the signed model and request of the newest round it trained. A request is

* refused when its round is older than that newest round (a rollback to an older model);
* refused when it asks to train a round the site already trained with another model or request
  (a replay); the same signed model and request again is a resume after an aggregator crash,
  and is accepted (the site draws fresh noise and charges its budget again).
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

from client_site.layout import SiteLayout
from client_site.failures import Reason, SiteRefusal
from infra.atomic_files import write_json_atomic
from infra.round_integrity import SignedRound

TRAIN = "train"


class RoundLog:
    """A site's record of the rounds it accepted, per run.

    Parameters
    ----------
    site_dir : Path
        The site directory.
    """

    def __init__(self, site_dir: Path) -> None:
        self.path = SiteLayout(Path(site_dir)).rounds_seen_path

    def admit(self, signed: SignedRound) -> None:
        """Record ``signed`` as seen, or raise :class:`SiteRefusal` for a replay or a rollback."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held from read to fsynced write
            runs = self._read()
            entry = runs.setdefault(signed.run_id, {"newest": 0, "trained": None})
            _check(signed, entry)
            entry["newest"] = max(int(entry["newest"]), signed.round)
            if signed.phase == TRAIN:
                entry["trained"] = {"round": signed.round, "digest": signed.digest,
                                    "config": signed.config_digest}
            write_json_atomic(self.path, {"runs": runs}, mode=0o600)

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8"))["runs"])
        except (ValueError, KeyError, TypeError) as e:
            raise SiteRefusal(Reason.INTERNAL,
                f"{self.path} is unreadable ({e}); the site cannot tell replayed rounds from new "
                f"ones. Restore it from backup, or delete it to start afresh."
            ) from e


def _check(signed: SignedRound, entry: dict[str, Any]) -> None:
    newest = int(entry["newest"])
    if signed.round < newest:
        raise SiteRefusal(Reason.ROUND_ROLLED_BACK,
            f"rollback refused: run {signed.run_id!r} round {signed.round} is older than round "
            f"{newest}, which this site already took part in"
        )
    trained = entry.get("trained")
    if signed.phase != TRAIN or not trained or int(trained["round"]) != signed.round:
        return
    if (trained["digest"], trained["config"]) != (signed.digest, signed.config_digest):
        raise SiteRefusal(Reason.ROUND_REPLAYED,
            f"replay refused: this site already trained run {signed.run_id!r} round "
            f"{signed.round} with another model or request; only a resume of the same signed "
            f"model is accepted"
        )
