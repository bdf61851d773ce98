"""Which site directory a SuperNode serves, from its node config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SIMULATION_SITES_ENV = "FEDMPT_SIMULATION_SITE_DIRS"
SIMULATION_AGGREGATOR_KEY_ENV = "FEDMPT_SIMULATION_AGGREGATOR_KEY"


def site_dir_of(node_config: Mapping[str, Any]) -> Path:
    """The site directory of this node.

    A real SuperNode is started with ``--node-config 'site-dir="/data/fedmpt/site"'``. In the
    simulation engine, node configs hold only ``partition-id``, which indexes the site list
    the simulation launcher put in ``FEDMPT_SIMULATION_SITE_DIRS``.
    """
    if "site-dir" in node_config:
        return Path(str(node_config["site-dir"]))
    listed = os.environ.get(SIMULATION_SITES_ENV)
    if listed and "partition-id" in node_config:
        return Path(listed.split(os.pathsep)[int(node_config["partition-id"])])
    raise ValueError(
        "this SuperNode has no 'site-dir' in its node config; start it with "
        "--node-config 'site-dir=\"/path/to/site\"'"
    )


def aggregator_key_of(node_config: Mapping[str, Any]) -> Path | None:
    """The aggregator public key this site pins, if any.

    A real SuperNode gets it from its bundle (``fedmpt site start`` passes
    ``aggregator-key="<bundle>/aggregator_signing.pub"`` in the node config); the simulation
    launcher names the simulated aggregator's key in ``FEDMPT_SIMULATION_AGGREGATOR_KEY``.
    Without one the site refuses every request (:mod:`federation.client_app`): it cannot check
    who signed the model it receives.
    """
    if "aggregator-key" in node_config:
        return Path(str(node_config["aggregator-key"]))
    listed = os.environ.get(SIMULATION_AGGREGATOR_KEY_ENV)
    return Path(listed) if listed else None
