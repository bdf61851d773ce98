"""An in-process Grid: the real ServerApp and ClientApp code, without Ray or network."""

from flwr.app import Context, Error, Message, RecordDict

from federation.client_app import app as client_app
from experiments.push_pull_grid import PushPullGrid


class InProcessGrid(PushPullGrid):
    """Delivers each message to the ClientApp of its destination node, in this process, when pulled.

    A ClientApp exception becomes an error reply, as Flower's runtime makes it.
    """

    def __init__(self, site_dirs, *, aggregator_key=None, first_node_id=1001, app=client_app):
        super().__init__()
        self.app = app  # the Message-API ClientApp, or federation.secagg_client's
        self.contexts = {}
        for i, site_dir in enumerate(site_dirs):
            node_config = {"site-dir": str(site_dir)}
            if aggregator_key is not None:
                node_config["aggregator-key"] = str(aggregator_key)
            node_id = first_node_id + i
            self.contexts[node_id] = Context(run_id=1, node_id=node_id, node_config=node_config,
                                             state=RecordDict(), run_config={})

    def get_node_ids(self):
        return list(self.contexts)

    def deliver(self, message):
        try:
            return self.app(message, self.contexts[message.metadata.dst_node_id])
        except Exception as e:  # noqa: BLE001  (what Flower's runtime does)
            return Message(Error(code=0, reason=f"{type(e).__name__}: {e}"), reply_to=message)
