"""``python -m federation`` runs the ``fedmpt`` command line."""

from federation.cli import app

app(prog_name="fedmpt")
