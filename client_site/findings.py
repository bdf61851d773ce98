"""The findings the consortium labels, in one fixed order shared by every part of FedMPT."""

FINDINGS: tuple[str, ...] = (
    "nodule",
    "consolidation",
    "ground_glass_opacity",
    "emphysema",
    "pleural_effusion",
)
