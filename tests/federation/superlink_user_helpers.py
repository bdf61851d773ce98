"""Helpers of the tests that run the SuperLink as its own user (``fedmpt-superlink``)."""

import contextlib
import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path


@contextlib.contextmanager
def folder_the_superlink_user_reaches():
    """A fresh folder outside pytest's temporary root, traversable by others; removed after.

    The SuperLink's user opens its database through every folder above it, each time its
    connection pool grows. pytest resets its shared ``/tmp/pytest-of-USER`` to mode 0700 at
    the start of every session on the host, which would cut that user off mid-run (HTTP 500,
    ``unable to open database file``), so the consortium cannot live under ``tmp_path``.
    """
    root = Path(tempfile.mkdtemp(prefix="fedmpt-deploy-"))
    try:
        _let_others_traverse(root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def superlink_python_for(folder):
    """An interpreter the SuperLink's user can run, with this environment's packages.

    Tests run as root from a virtual environment whose base interpreter may sit under /root
    (mode 0700), which another user cannot execute; the system's interpreter of the same
    minor version runs the same packages.
    """
    repo = Path(__file__).resolve().parents[2]
    packages = sysconfig.get_paths()["purelib"]
    for reached in (Path(sys.executable).parent, Path(packages), repo):  # a checkout may sit below a 0700 folder
        _let_others_traverse(reached)
    if all(os.stat(p).st_mode & stat.S_IXOTH for p in Path(sys.executable).resolve().parents):
        return sys.executable
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(minor, path="/usr/bin:/usr/local/bin")
    assert system, "no system interpreter the SuperLink's user can run"
    wrapper = folder / "superlink-python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={packages}:{repo} exec {system} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _let_others_traverse(folder):
    """Add the search (x) bit for others to ``folder`` and every folder above it; nothing else."""
    for each in [folder, *folder.parents]:
        mode = each.stat().st_mode
        if not mode & stat.S_IXOTH:
            each.chmod(mode | stat.S_IXOTH)


def uid_of(pid):
    """The real uid of process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M)[1])


def opens_as(uid, gid, paths):
    """Which of ``paths`` a forked child running as ``uid``/``gid`` (no other groups) can open."""
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, try each file, report as exit-status bits
        code = 0
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            for bit, path in enumerate(paths):
                try:
                    open(path, "rb").close()
                    code |= 1 << bit
                except OSError:
                    pass
        finally:
            os._exit(code if os.getuid() == uid else 255)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code != 255, "the child could not switch user"
    return {path: bool(code & (1 << bit)) for bit, path in enumerate(paths)}
