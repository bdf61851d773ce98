"""The ``fedmpt`` command line: one module per command group (``fedmpt X Y`` lives in ``cli/X.py``)."""
