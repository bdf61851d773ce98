"""``python -m cli`` runs the ``fedmpt`` command line."""

from cli.main import app

app(prog_name="fedmpt")
