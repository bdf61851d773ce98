"""The runtime's leaf: durable file writes and the one place that touches Flower's and Opacus'
internals (checked against the pinned versions at import). Every runtime package may import it;
it imports none of ours."""
