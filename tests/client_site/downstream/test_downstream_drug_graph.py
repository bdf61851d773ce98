"""The DDI penalty and interaction-aware drug selection on a 3-drug fixture and the formulary."""

import pytest
import torch

from client_site.downstream import ClinicalMedMPT, DrugGraph, ddi_penalty, select_drugs
from client_site.reference.formulary import FORMULARY, interaction_table_csv


def test_ddi_penalty_is_the_hand_computed_sum_over_interacting_pairs(three_drugs):
    # Prepare: pairs a-b and b-c interact
    p = torch.tensor([[0.9, 0.5, 0.2], [0.1, 1.0, 1.0], [1.0, 0.0, 1.0]])
    # Execute
    penalty = ddi_penalty(p, three_drugs.adjacency())
    # Assert: 0.9*0.5 + 0.5*0.2; 0.1*1 + 1*1; a-c does not interact
    torch.testing.assert_close(penalty, torch.tensor([0.55, 1.1, 0.0]))


def test_adjacencies_are_symmetric_over_the_listed_pairs(three_drugs):
    # Execute
    full, major = three_drugs.adjacency(), three_drugs.adjacency(major_only=True)
    # Assert
    assert torch.equal(full, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert torch.equal(major, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


def test_selection_keeps_only_the_more_probable_drug_of_a_major_pair(three_drugs):
    # Prepare
    major = three_drugs.adjacency(major_only=True)
    p = torch.tensor([[0.9, 0.8, 0.7], [0.6, 0.95, 0.7], [0.9, 0.8, 0.1]])
    # Execute
    picked = select_drugs(p, major, three_drugs.drugs, threshold=0.5)
    # Assert: a-b is major (keep the likelier), b-c only moderate (both may stay), c under threshold
    assert picked == [["a", "c"], ["b", "c"], ["a"]]


def test_a_dropped_drug_does_not_remove_its_other_partners():
    # Prepare: chain a-b-c of major pairs with p(a) > p(b) > p(c)
    chain = DrugGraph(drugs=("a", "b", "c"), interactions=frozenset({frozenset("ab"), frozenset("bc")}),
                      major=frozenset({frozenset("ab"), frozenset("bc")}))
    # Execute
    picked = select_drugs(torch.tensor([[0.9, 0.8, 0.7]]), chain.adjacency(major_only=True), chain.drugs,
                          threshold=0.5)
    # Assert
    assert picked == [["a", "c"]]


def test_model_recommend_drops_the_lower_probability_drug(tiny_cfg, three_drugs, downstream_batch):
    # Prepare: a constant medication head with p = (0.73, 0.88, 0.62)
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg, graph=three_drugs).eval()
    last = model.clinical_heads.medication.linear
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.0, 2.0, 0.5]))
    batch = downstream_batch(tiny_cfg, 3)
    # Execute
    picked = model.recommend(batch["volume"], batch["clinical"])
    strict = model.recommend(batch["volume"], batch["clinical"], threshold=0.7)
    # Assert: b beats a (major pair); c only interacts moderately with b
    assert picked == [["b", "c"]] * 4
    assert strict == [["b"]] * 4


def test_site_table_gives_the_consortium_graph(tmp_path):
    # Prepare
    path = tmp_path / "drug_interactions.csv"
    path.write_text(interaction_table_csv(), encoding="utf-8")
    # Execute
    graph = DrugGraph.from_csv(path)
    # Assert
    assert graph == DrugGraph.consortium() and graph.drugs == FORMULARY
    assert torch.equal(graph.adjacency(), graph.adjacency().T)
    assert graph.adjacency(major_only=True).sum() < graph.adjacency().sum()


def test_bad_graphs_and_thresholds_are_refused(three_drugs):
    with pytest.raises(ValueError, match="major"):
        DrugGraph(drugs=("a", "b"), interactions=frozenset(), major=frozenset({frozenset("ab")}))
    with pytest.raises(ValueError, match="threshold"):
        select_drugs(torch.zeros(1, 3), three_drugs.adjacency(), three_drugs.drugs, threshold=1.0)


def test_max_drugs_keeps_the_most_probable_of_the_list(three_drugs):
    # Prepare: no interaction among the candidates
    none = DrugGraph(drugs=three_drugs.drugs, interactions=frozenset(), major=frozenset())
    p = torch.tensor([[0.7, 0.9, 0.8]])
    # Execute
    picked = select_drugs(p, none.adjacency(major_only=True), none.drugs, threshold=0.5, max_drugs=2)
    # Assert
    assert picked == [[none.drugs[1], none.drugs[2]]]
