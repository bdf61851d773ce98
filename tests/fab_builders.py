"""A minimal Flower app bundle (FAB), built by Flower's own builder, and Flower's installer."""

import hashlib
import textwrap

from flwr.cli.install import install_from_fab

from infra.compat import build_fab


def tiny_fab(root, body="VALUE = 1\n"):
    """Bytes and SHA-256 of a FAB holding a pyproject and one module."""
    app = root / "app"
    (app / "tinyapp").mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tinyapp"
        version = "1.0.0"
        [tool.flwr.app]
        publisher = "fedmpt"
        [tool.flwr.app.components]
        serverapp = "tinyapp.apps:server"
        clientapp = "tinyapp.apps:client"
        [tool.flwr.app.config]
        """))
    (app / "tinyapp" / "__init__.py").write_text("")
    (app / "tinyapp" / "apps.py").write_text(body)
    fab = build_fab(app)
    return fab, hashlib.sha256(fab).hexdigest()


def installer(install_dir):
    """Flower's ``install_from_fab`` into ``install_dir`` (as the ClientApp process calls it)."""
    return lambda fab, *args, **kwargs: install_from_fab(fab, install_dir, skip_prompt=True)
