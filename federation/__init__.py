"""How the federation runs: Flower ServerApp/ClientApp wiring, the message protocol, simulation and deployment."""
