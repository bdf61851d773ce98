"""Real federation across processes and hosts: consortium PKI, launchers, proxy, app approval."""

__all__: list[str] = []
