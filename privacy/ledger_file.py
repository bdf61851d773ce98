"""The ledger's files: a hash-chained JSON-lines log, a head record anchoring it, and a lock.

``ledger.jsonl`` holds one JSON object per line, each with the SHA-256 of the line before it,
so an edited or reordered entry breaks the chain. The chain alone cannot show that entries were
cut from the end, so ``ledger.jsonl.head`` records how many entries there are and the hash of
the last one; it is rewritten atomically after every fsynced append. A ledger shorter than its
head, or whose entry at the head's count has another hash, was truncated or rolled back and is
refused. Every read and append happens under an exclusive ``flock`` on ``ledger.jsonl.lock``,
so processes of concurrent runs see each other's entries and never interleave writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from infra.atomic_files import PRIVATE_MODE, fsync_directory, write_json_atomic
from infra.file_lock import locked
from privacy.errors import LedgerCorruptedError

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_SUFFIX = ".head"

Entry = dict[str, Any]


def head_path(path: Path) -> Path:
    """The head record beside the ledger ``path``."""
    return path.with_name(path.name + HEAD_SUFFIX)


def digest(entry: Entry) -> str:
    """SHA-256 of an entry without its own ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def write_head(path: Path, entries: list[Entry]) -> None:
    """Anchor the ledger at its current length and last hash (atomic, fsynced)."""
    write_json_atomic(head_path(path), {"entries": len(entries),
                                        "last_hash": entries[-1]["hash"] if entries else GENESIS},
                      mode=PRIVATE_MODE)


def _chain(path: Path, lines: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    previous = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise LedgerCorruptedError(f"{path}:{number} is not valid JSON; restore the ledger "
                                       "from backup and do not train until it verifies") from e
        if not isinstance(entry, dict) or entry.get("prev_hash") != previous or entry.get("hash") != digest(entry):
            raise LedgerCorruptedError(
                f"{path}:{number} breaks the hash chain: the ledger was edited. "
                "Restore it from backup; do not train until it verifies."
            )
        previous = entry["hash"]
        entries.append(entry)
    return entries


def _chains_on(fragment: bytes, entries: list[Entry]) -> bool:
    """Whether ``fragment`` is a whole entry that follows ``entries`` (only its newline lost)."""
    try:
        entry = json.loads(fragment.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    previous = entries[-1]["hash"] if entries else GENESIS
    return isinstance(entry, dict) and entry.get("prev_hash") == previous and entry.get("hash") == digest(entry)


def _read_head(path: Path) -> dict[str, Any] | None:
    head = head_path(path)
    if not head.exists():
        return None
    try:
        record = json.loads(head.read_text(encoding="utf-8"))
        return {"entries": int(record["entries"]), "last_hash": str(record["last_hash"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LedgerCorruptedError(f"{head} is unreadable ({e}); restore it from backup together "
                                   f"with {path.name}") from e


def _repair_tail(path: Path, raw: bytes, entries: list[Entry], head: dict[str, Any] | None) -> list[Entry]:
    """Deal with bytes after the last newline; called with the lock held."""
    cut = raw.rfind(b"\n") + 1
    fragment = raw[cut:]
    if _chains_on(fragment, entries):
        # A whole, chained entry that lost only its newline: it is kept, never dropped.
        with open(path, "ab") as handle:
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        logger.warning("ledger %s: restored the missing newline after its last entry", path)
        return [*entries, json.loads(fragment.decode("utf-8"))]
    if head is not None and head["entries"] > len(entries):
        return entries  # truncated inside an anchored entry: the head check refuses it
    # A crash while appending: the entry never became durable and was never anchored, so no
    # training followed it. Keep the fragment for the auditor and cut it from the ledger.
    torn = path.with_name(f"{path.name}.torn-{int(time.time())}")
    torn.write_bytes(fragment)
    with open(path, "r+b") as handle:
        handle.truncate(cut)
        os.fsync(handle.fileno())
    logger.warning("ledger %s had an incomplete last line; moved it to %s", path, torn)
    return entries


def read_entries(path: Path) -> list[Entry]:
    """Load and verify the ledger against its chain and its head; call with :func:`locked` held.

    Raises
    ------
    LedgerCorruptedError
        An entry was edited, entries were cut from the end, the file was rolled back to an
        older copy, or a non-empty ledger has no head record.
    """
    head = _read_head(path)
    raw = path.read_bytes() if path.exists() else b""
    cut = raw.rfind(b"\n") + 1
    entries = _chain(path, raw[:cut].decode("utf-8").splitlines())
    if cut < len(raw):
        entries = _repair_tail(path, raw, entries, head)
    if head is None:
        if entries:
            raise LedgerCorruptedError(
                f"{path} has {len(entries)} entries but no head record {head_path(path).name}: it was "
                "deleted, or the ledger predates head records. Restore the head from backup, or, once "
                "the ledger is checked against your backup, anchor it with "
                "`fedmpt privacy ledger SITE_DIR --adopt`."
            )
        return entries
    if len(entries) < head["entries"]:
        raise LedgerCorruptedError(
            f"{path} holds {len(entries)} entries but its head {head_path(path).name} records "
            f"{head['entries']}: entries were removed from the end. Restore the ledger from backup; "
            "do not train until it verifies."
        )
    anchored = entries[head["entries"] - 1]["hash"] if head["entries"] else GENESIS
    if anchored != head["last_hash"]:
        raise LedgerCorruptedError(
            f"{path} does not match its head {head_path(path).name} (entry {head['entries']} has "
            "another hash): the ledger was replaced by another copy. Restore it from backup; do "
            "not train until it verifies."
        )
    if len(entries) > head["entries"]:
        # Appended and fsynced, then a crash before the head was rewritten: keep and anchor.
        write_head(path, entries)
    return entries


def append_entry(path: Path, entries: list[Entry], body: Entry) -> Entry:
    """Chain ``body`` after ``entries``, append it (fsync), then re-anchor the head.

    Call with :func:`locked` held and ``entries`` freshly read by :func:`read_entries`.
    """
    entry = {
        "seq": len(entries),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **body,
        "prev_hash": entries[-1]["hash"] if entries else GENESIS,
    }
    entry["hash"] = digest(entry)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_directory(path.parent)
    write_head(path, [*entries, entry])
    return entry


def adopt(path: Path) -> int:
    """Anchor an existing ledger that has no head record yet (after a human checked it).

    Returns
    -------
    int
        The number of entries anchored.
    """
    with locked(path):
        if head_path(path).exists():
            raise LedgerCorruptedError(f"{head_path(path)} already exists; nothing to adopt")
        raw = path.read_bytes() if path.exists() else b""
        entries = _chain(path, raw.decode("utf-8").splitlines())
        write_head(path, entries)
        logger.warning("ledger %s: anchored %d existing entries in a new head record", path, len(entries))
        return len(entries)
