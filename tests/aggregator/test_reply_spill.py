"""Replies received through SpillingGrid keep their arrays on disk and aggregate as before."""

import math
import stat
import time

import numpy as np
import pytest
from flwr.app import Error, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from aggregator.reply_spill import SpilledArray, SpillingGrid
from aggregator.update_validation import check_reply
from aggregator_helpers import as_record, global_model, honest_update
from experiments.push_pull_grid import PushPullGrid

NODES = [101, 102, 103]


class _Sites(PushPullGrid, Grid):
    """Sites behind a Grid: each pushed message is answered by its node's prepared content.

    ``contents`` maps node id to a function building that node's reply content (a RecordDict
    or an Error) afresh, as a site would; ``delays`` holds how many pulls a node's reply misses
    before it arrives (``math.inf``: never).
    """

    def __init__(self, contents, delays=None):
        super().__init__()
        self.contents = contents
        self.delays = dict(delays or {})
        self.pulls = []  # (ids asked for, replies returned) per pull_messages call
        self._run = None

    def set_run(self, run):
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self.contents)

    def pull_messages(self, message_ids):
        asked = list(message_ids)
        replies = super().pull_messages(asked)
        self.pulls.append((asked, replies))
        return replies

    def deliver(self, message):
        node = message.metadata.dst_node_id
        if self.delays.get(node, 0) > 0:
            self.delays[node] -= 1
            return None
        return Message(self.contents[node](), reply_to=message)

    def send_and_receive(self, messages, *, timeout=None):
        raise AssertionError("SpillingGrid must push and pull itself")


def _outgoing(nodes, message_type=MessageType.TRAIN):
    return [Message(RecordDict(), dst_node_id=n, message_type=message_type) for n in nodes]


def _train_content(arrays, n):
    return lambda: RecordDict({"arrays": as_record(arrays),
                               "metrics": MetricRecord({"num-examples": n, "train_loss": 0.5})})


def _updates(reference, nodes=NODES):
    return {node: honest_update(reference, seed=node) for node in nodes}


def _reference_with_int():
    return {**global_model(), "bn.num_batches_tracked": np.array(7, np.int64)}


def _spill_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_spilled_replies_equal_the_originals_and_keep_no_bytes_in_memory(tmp_path):
    # Prepare: three sites replying with float32 and int64 arrays
    updates = _updates(_reference_with_int())
    sites = _Sites({node: _train_content(u, 10) for node, u in updates.items()})
    # Execute
    with SpillingGrid(sites, tmp_path / "spill") as grid:
        replies = list(grid.send_and_receive(_outgoing(NODES)))
        files = _spill_files(tmp_path / "spill")
        # Assert
        assert len(replies) == 3 and len(files) == 3 * len(updates[101])
        for reply, node in zip(replies, NODES, strict=True):
            arrays = reply.content.array_records["arrays"]
            assert list(arrays) == list(updates[node])
            for key, expected in updates[node].items():
                array = arrays[key]
                assert isinstance(array, SpilledArray) and "data" not in array.__dict__
                assert array.dtype == str(expected.dtype) and array.shape == expected.shape
                values = array.numpy()
                assert values.dtype == expected.dtype and values.shape == expected.shape
                np.testing.assert_array_equal(values, expected)


def test_replies_are_pulled_one_at_a_time(tmp_path):
    # Prepare
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    # Execute
    with SpillingGrid(sites, tmp_path / "spill") as grid:
        replies = list(grid.send_and_receive(_outgoing(NODES)))
    # Assert: one id asked and at most one reply returned per pull
    assert len(replies) == 3
    assert [len(asked) for asked, _ in sites.pulls] == [1, 1, 1]
    assert max(len(pulled) for _, pulled in sites.pulls) == 1


def test_fedavg_over_spilled_replies_is_exactly_fedavg_over_the_originals(tmp_path):
    # Prepare: sites of different weights, and the same replies kept in memory
    updates = _updates(global_model())
    contents = {node: _train_content(u, 10 + i) for i, (node, u) in enumerate(updates.items())}
    originals = [Message(contents[m.metadata.dst_node_id](), reply_to=m) for m in _outgoing(NODES)]
    # Execute
    with SpillingGrid(_Sites(contents), tmp_path / "spill") as grid:
        spilled = list(grid.send_and_receive(_outgoing(NODES)))
        arrays, metrics = FedAvg().aggregate_train(1, spilled)
    expected_arrays, expected_metrics = FedAvg().aggregate_train(1, originals)
    # Assert
    assert list(arrays) == list(expected_arrays) == list(updates[101])
    for key, expected in expected_arrays.items():
        assert np.array_equal(arrays[key].numpy(), expected.numpy())  # bit for bit
    assert dict(metrics) == dict(expected_metrics)
    assert not np.array_equal(arrays["head.weight"].numpy(), updates[101]["head.weight"])


def test_update_validation_gives_the_same_verdict_and_norm_on_spilled_replies(tmp_path):
    # Prepare: two honest sites and one with a NaN
    reference = global_model()
    updates = _updates(reference)
    updates[103]["encoder.bias"][1] = np.nan
    contents = {node: _train_content(u, 10) for node, u in updates.items()}
    # Execute
    with SpillingGrid(_Sites(contents), tmp_path / "spill") as grid:
        spilled = [check_reply(r.content, reference) for r in grid.send_and_receive(_outgoing(NODES))]
    originals = [check_reply(contents[node](), reference) for node in NODES]
    # Assert
    assert spilled == originals
    assert spilled[0].reason is None and spilled[0].norm > 0 and spilled[1].norm != spilled[0].norm
    assert "NaN" in spilled[2].reason


def test_spill_files_live_until_the_next_call_and_go_on_close(tmp_path):
    # Prepare
    spill_dir = tmp_path / "aggregator" / "spill" / "run-1"
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    grid = SpillingGrid(sites, spill_dir)
    # Execute: two calls, then close
    first = list(grid.send_and_receive(_outgoing(NODES)))
    first_files = _spill_files(spill_dir)
    second = list(grid.send_and_receive(_outgoing(NODES)))
    second_files = _spill_files(spill_dir)
    first_left = [p for p in first_files if p.exists()]
    grid.close()
    # Assert
    assert len(first_files) == len(second_files) == 3 * 3
    assert first_left == [] and not set(first_files) & set(second_files)
    with pytest.raises(FileNotFoundError):
        first[0].content.array_records["arrays"]["head.weight"].numpy()
    with pytest.raises(FileNotFoundError):
        second[0].content.array_records["arrays"]["head.weight"].numpy()
    assert not spill_dir.exists() and (tmp_path / "aggregator" / "spill").is_dir()


def test_spill_files_are_mode_0600_in_0700_folders(tmp_path):
    # Prepare
    spill_dir = tmp_path / "spill"
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    # Execute
    with SpillingGrid(sites, spill_dir) as grid:
        grid.send_and_receive(_outgoing(NODES))
        files = _spill_files(spill_dir)
        folders = [spill_dir, *{p.parent for p in files}]
        # Assert
        assert len(files) == 9 and len(folders) == 2
        assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
        assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}


def test_files_of_the_previous_call_are_gone_when_the_next_call_pushes(tmp_path):
    # Prepare: a Grid that looks at the spill folder when the second call pushes
    spill_dir = tmp_path / "spill"
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    seen_at_push = []
    push = sites.push_messages
    sites.push_messages = lambda messages: (seen_at_push.append(_spill_files(spill_dir)), push(messages))[1]
    # Execute
    with SpillingGrid(sites, spill_dir) as grid:
        grid.send_and_receive(_outgoing(NODES))
        grid.send_and_receive(_outgoing(NODES))
    # Assert
    assert seen_at_push == [[], []]


def test_a_reply_that_never_arrives_times_out_and_the_others_are_returned(tmp_path):
    # Prepare: 102 replies one pass late, 103 never
    updates = _updates(global_model())
    sites = _Sites({node: _train_content(u, 10) for node, u in updates.items()},
                   delays={102: 1, 103: math.inf})
    outgoing = _outgoing(NODES)
    # Execute
    with SpillingGrid(sites, tmp_path / "spill", poll_interval=0.05) as grid:
        started = time.monotonic()
        replies = list(grid.send_and_receive(outgoing, timeout=0.4))
        elapsed = time.monotonic() - started
        # Assert
        node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in outgoing}
        assert [node_of[r.metadata.reply_to_message_id] for r in replies] == [101, 102]
        np.testing.assert_array_equal(replies[1].content.array_records["arrays"]["head.weight"].numpy(),
                                      updates[102]["head.weight"])
    assert 0.4 <= elapsed < 3
    assert len(sites.pulls) > 4  # 103 was asked for on every pass


def test_without_timeout_a_late_reply_is_waited_for(tmp_path):
    # Prepare: 103 replies only on the third pass
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()},
                   delays={103: 2})
    # Execute
    with SpillingGrid(sites, tmp_path / "spill", poll_interval=0.01) as grid:
        replies = list(grid.send_and_receive(_outgoing(NODES)))
    # Assert
    assert len(replies) == 3 and not sites.pending
    assert [len(asked) for asked, _ in sites.pulls] == [1, 1, 1, 1, 1]


def test_replies_without_arrays_pass_through_unchanged(tmp_path):
    # Prepare: an evaluate reply (metrics only) and an error reply
    sites = _Sites({101: lambda: RecordDict({"metrics": MetricRecord({"val_loss": 0.25, "num-examples": 4})}),
                    102: lambda: Error(code=5, reason="Node Unavailable")})
    # Execute
    with SpillingGrid(sites, tmp_path / "spill") as grid:
        replies = list(grid.send_and_receive(_outgoing([101, 102], MessageType.EVALUATE)))
        files = _spill_files(tmp_path / "spill")
    # Assert: the very messages pulled, untouched, and nothing written
    pulled = [reply for _, got in sites.pulls for reply in got]
    assert len(replies) == 2 and all(r is p for r, p in zip(replies, pulled, strict=True))
    assert dict(replies[0].content.metric_records["metrics"]) == {"val_loss": 0.25, "num-examples": 4}
    assert not replies[0].content.array_records
    assert replies[1].has_error() and replies[1].error.reason == "Node Unavailable"
    assert files == []


def test_call_folders_left_by_a_crashed_aggregator_go_when_the_run_resumes(tmp_path):
    spill_dir = tmp_path / "spill" / "run-1"
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    crashed = SpillingGrid(sites, spill_dir)
    list(crashed.send_and_receive(_outgoing(NODES)))  # never closed: the process died mid-round
    left = _spill_files(spill_dir)
    SpillingGrid(sites, spill_dir)  # the resumed run wraps its grid again
    assert len(left) == 3 * 3 and not any(p.exists() for p in left)


def test_everything_but_send_and_receive_is_the_wrapped_grid(tmp_path):
    sites = _Sites({node: _train_content(u, 10) for node, u in _updates(global_model()).items()})
    grid = SpillingGrid(sites, tmp_path / "spill")
    run = object()

    grid.set_run(run)
    message = grid.create_message(RecordDict(), MessageType.TRAIN, 102, "round-1")
    ids = list(grid.push_messages([message]))

    assert grid.run is run and list(grid.get_node_ids()) == NODES
    assert message.metadata.dst_node_id == 102 and message.metadata.group_id == "round-1"
    (reply,) = grid.pull_messages(ids)  # not spilled: only send_and_receive spills
    assert not any(isinstance(a, SpilledArray) for r in reply.content.array_records.values()
                   for a in r.values())
