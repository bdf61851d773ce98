"""dashboard.users and ``fedmpt dashboard users``: argon2id hashes, roles, the 0600 users file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from typer.testing import CliRunner

from dashboard.users import Role, User, UsersFileError, UserStore, consortium_users_path, ensure_user, site_users_path
from cli.main import app


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(profiles.CHEAPEST)


def test_ensure_user_hashes_with_argon2id(tmp_path: Path) -> None:
    # Execute
    user = ensure_user(tmp_path, "lee", "lead", "correct-horse-battery")

    # Assert: production parameters (RFC 9106 low-memory profile), file readable by its owner only
    path = consortium_users_path(tmp_path)
    assert user == User(name="lee", role=Role.LEAD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())["users"]["lee"]
    assert stored["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct-horse-battery" not in path.read_text()
    assert UserStore(path).authenticate("lee", "correct-horse-battery") == user


def test_authenticate_and_replace(tmp_path: Path) -> None:
    # Prepare
    store = UserStore(tmp_path / "u.json", hasher=cheap_hasher())
    user = store.add("lee", "lead", "correct-horse-battery")

    # Execute / Assert
    assert store.authenticate("lee", "correct-horse-battery") == user
    assert store.authenticate("lee", "correct-horse-batter") is None
    assert store.authenticate("nobody", "correct-horse-battery") is None
    store.add("lee", "reviewer", "another-password", replace=True)
    assert store.authenticate("lee", "correct-horse-battery") is None
    assert store.authenticate("lee", "another-password") == User(name="lee", role=Role.REVIEWER)


@pytest.mark.parametrize(
    ("name", "role", "password", "site", "message"),
    [
        ("lee", "admin", "long-enough", None, "role must be one of lead, reviewer, site"),
        ("ana", "site", "long-enough", None, "must be bound to a site"),
        ("rita", "reviewer", "long-enough", "hospital-a", "only site users are bound"),
        ("../x", "lead", "long-enough", None, "user name must be"),
        ("lee", "lead", "short", None, "at least 8 characters"),
    ],
)
def test_invalid_users(tmp_path: Path, name: str, role: str, password: str, site: str | None, message: str) -> None:
    with pytest.raises(UsersFileError, match=message):
        UserStore(tmp_path / "u.json", hasher=cheap_hasher()).add(name, role, password, site=site)
    assert not (tmp_path / "u.json").exists()


def test_add_refuses_to_overwrite_and_remove(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.json", hasher=cheap_hasher())
    store.add("ana", "site", "long-enough", site="hospital-a")
    with pytest.raises(UsersFileError, match="exists"):
        store.add("ana", "lead", "long-enough")
    assert store.users() == [User(name="ana", role=Role.SITE, site="hospital-a")]
    assert store.remove("ana") and not store.remove("ana")
    assert store.users() == []


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text("[1, 2]")
    with pytest.raises(UsersFileError, match="not a dashboard users file"):
        UserStore(path).users()


def test_cli_add_list_remove(tmp_path: Path) -> None:
    # Prepare
    runner = CliRunner()
    base = ["dashboard", "users"]

    # Execute: the password comes on standard input, never as an argument
    added = runner.invoke(app, [*base, "add", "--workdir", str(tmp_path), "--name", "lee", "--role", "lead"],
                          input="correct-horse-battery\n")
    short = runner.invoke(app, [*base, "add", "--workdir", str(tmp_path), "--name", "bo", "--role", "reviewer"],
                          input="short\n")
    listed = runner.invoke(app, [*base, "list", "--workdir", str(tmp_path)])
    removed = runner.invoke(app, [*base, "remove", "--workdir", str(tmp_path), "--name", "lee"])

    # Assert
    assert added.exit_code == 0, added.output
    assert short.exit_code == 2 and "at least 8 characters" in short.output
    assert listed.output.strip() == "lee\tlead"
    assert removed.exit_code == 0 and UserStore(consortium_users_path(tmp_path)).users() == []


def test_cli_site_user_defaults_to_the_site_name(tmp_path: Path) -> None:
    # Prepare
    site = tmp_path / "site"
    site.mkdir()
    (site / "site.toml").write_text('[site]\nname = "hospital-b"\n')

    # Execute
    result = CliRunner().invoke(
        app, ["dashboard", "users", "add", "--site-dir", str(site), "--name", "bo", "--role", "site"],
        input="correct-horse-battery\n",
    )

    # Assert
    assert result.exit_code == 0, result.output
    assert UserStore(site_users_path(site)).users() == [User(name="bo", role=Role.SITE, site="hospital-b")]


def test_cli_needs_exactly_one_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "users", "list"])
    assert result.exit_code == 2 and "exactly one of --workdir" in result.output
