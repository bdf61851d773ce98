"""`fedmpt privacy estimate|plan` agree with Opacus's own accountants and solver."""

import json
import re

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from typer.testing import CliRunner

from cli.main import app

# (sample rate q, noise multiplier sigma, steps T, delta): small and large q, low and high
# noise, few and many steps, the brief's own settings among them.
SETTINGS = [
    (0.01, 4.0, 10_000, 1e-5),
    (256 / 60_000, 1.3, 3_516, 1e-5),
    (0.02, 1.0, 250, 1e-5),
    (0.1, 0.8, 50, 1e-6),
    (0.5, 2.0, 20, 1e-4),
]
ACCOUNTANTS = {"rdp": RDPAccountant, "prv": PRVAccountant}


def _invoke(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI callback points FLWR_HOME at ./.flwr
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("mechanism", sorted(ACCOUNTANTS))
@pytest.mark.parametrize("q,sigma,steps,delta", SETTINGS)
def test_estimate_json_matches_opacus(mechanism, q, sigma, steps, delta, tmp_path, monkeypatch):
    # Prepare: Opacus's accountant fed step by step, as DPOptimizer's hook does
    reference = ACCOUNTANTS[mechanism]()
    for _ in range(steps):
        reference.step(noise_multiplier=sigma, sample_rate=q)
    expected = reference.get_epsilon(delta=delta)
    # Execute
    out = _invoke(["privacy", "estimate", "--sample-rate", repr(q), "--noise-multiplier", repr(sigma),
                   "--steps", str(steps), "--delta", repr(delta), "--accountant", mechanism, "--json"],
                  tmp_path, monkeypatch)
    # Assert
    payload = json.loads(out)
    assert payload["accountant"] == mechanism and payload["delta"] == delta
    assert payload["epsilon"] == pytest.approx(expected, rel=1e-6)


def test_estimate_text_output_names_epsilon_and_delta(tmp_path, monkeypatch):
    out = _invoke(["privacy", "estimate", "--sample-rate", "0.02", "--noise-multiplier", "1.0",
                   "--steps", "250"], tmp_path, monkeypatch)
    assert re.fullmatch(r"epsilon = \d+\.\d{4} at delta = 1e-05 \(rdp\)\n", out)


@pytest.mark.parametrize("mechanism,target,rounds,local_steps,q", [
    ("rdp", 1.0, 3, 10, 8 / 18), ("rdp", 4.0, 10, 50, 0.05), ("rdp", 8.0, 5, 100, 0.02),
    ("prv", 4.0, 10, 50, 0.05),  # PRV is numerical: each solver step costs ~0.5 s
])
def test_plan_sigma_meets_target_and_is_close(mechanism, target, rounds, local_steps, q, tmp_path,
                                              monkeypatch):
    # Execute
    out = _invoke(["privacy", "plan", "--target-epsilon", str(target), "--delta", "1e-5",
                   "--rounds", str(rounds), "--local-steps", str(local_steps),
                   "--sample-rate", repr(q), "--accountant", mechanism], tmp_path, monkeypatch)
    # Assert: the printed sigma, priced again by Opacus over every step of the run
    match = re.search(r"noise multiplier = ([\d.]+) \(epsilon ([\d.]+)", out)
    assert match, out
    sigma, printed_epsilon = float(match.group(1)), float(match.group(2))
    reference = ACCOUNTANTS[mechanism]()
    reference.history = [(sigma, q, rounds * local_steps)]
    epsilon = reference.get_epsilon(delta=1e-5)
    assert printed_epsilon <= target
    # sigma is printed to 4 decimals: rounding it may move epsilon by well under 1e-3
    assert epsilon <= target + 1e-3
    assert epsilon >= target - 0.02  # Opacus's solver stops within 0.01 of the target
    # 3 % less noise crosses the target: the plan is not needlessly noisy
    reference.history = [(sigma * 0.97, q, rounds * local_steps)]
    assert reference.get_epsilon(delta=1e-5) > target
