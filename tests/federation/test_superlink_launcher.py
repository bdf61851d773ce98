"""The SuperLink launcher raises Flower's SQLite busy timeout before Flower opens its database."""

import sqlite3

from flwr.supercore import constant, sql_mixin

from infra.compat import patch_sqlite_busy_timeout


def test_busy_timeout_is_applied_to_new_connections(monkeypatch):
    monkeypatch.setattr(constant, "SQLITE_PRAGMAS", constant.SQLITE_PRAGMAS)
    monkeypatch.setattr(sql_mixin, "SQLITE_PRAGMAS", sql_mixin.SQLITE_PRAGMAS)

    patch_sqlite_busy_timeout(120000)
    connection = sqlite3.connect(":memory:")
    sql_mixin._set_sqlite_pragmas(connection, None)  # what Flower runs on each new connection

    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 120000
