"""The runtime's leaf, shared by the aggregator and the sites: message record keys, signatures
and signed round requests, durable file writes, and the one place that touches Flower's and
Opacus' internals (checked against the pinned versions at import). Every runtime package may
import it; it imports none of ours."""
