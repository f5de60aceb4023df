import pytest
import torch

from speechkit.data.contexts import ContextStore, context_path, write_context_store


def test_round_trip_and_unknown_contexts(tmp_path):
    vectors = torch.randn(3, 5)
    valid = torch.tensor([True, False, True])
    write_context_store(tmp_path, "speaker", ["a", "b", "c"], vectors, valid, encoder="test")
    store = ContextStore.load(tmp_path, "speaker")
    assert store.dim == 5 and len(store) == 3 and store.encoder == "test"
    assert torch.equal(store.get("a"), vectors[0])
    assert store.get("b") is None  # stored as failed
    vecs, known = store.batch(["c", "zz", "b", "a"])
    assert known.tolist() == [True, False, False, True]
    assert torch.equal(vecs[0], vectors[2]) and torch.equal(vecs[3], vectors[0])
    assert torch.all(vecs[1] == 0) and torch.all(vecs[2] == 0)
    assert store.missing == 3  # b once via get, zz and b via batch
    assert not context_path(tmp_path, "speaker").with_suffix(".safetensors.tmp").exists()


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="N=2"):
        write_context_store(tmp_path, "event", ["a", "b"], torch.zeros(3, 4))
    with pytest.raises(ValueError, match="duplicate"):
        write_context_store(tmp_path, "event", ["a", "a"], torch.zeros(2, 4))
    with pytest.raises(ValueError, match="stored kinds"):
        write_context_store(tmp_path, "language", ["a"], torch.zeros(1, 4))
    with pytest.raises(FileNotFoundError, match="compute-contexts"):
        ContextStore.load(tmp_path, "speaker")
