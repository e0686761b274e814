import numpy as np
import pytest

from sas_jax.corruption.store import NOT_VISITED, SampleStore


def test_layout_is_compact_and_bytes_match_what_is_printed():
    s = SampleStore(np.arange(1000), max_predictions=20, seq_len=128, vocab_size=30522)
    assert (s.positions.dtype, s.tokens.dtype, s.count.dtype) == (np.uint8, np.uint16, np.uint8)
    assert s.bytes_per_example == 20 * 1 + 20 * 2 + 1 == 61
    assert s.nbytes == 1000 * 61
    assert "61 B" in s.describe()
    big = SampleStore(np.arange(10), max_predictions=80, seq_len=512, vocab_size=128_000)
    assert (big.positions.dtype, big.tokens.dtype) == (np.uint16, np.int32)
    assert big.bytes_per_example == 80 * 2 + 80 * 4 + 1


def test_write_read_round_trip_compacts_valid_slots():
    s = SampleStore(np.array([3, 8, 9, 20]), max_predictions=4, seq_len=32, vocab_size=1000)
    _, _, count, visited = s.read([8, 20])
    assert count.tolist() == [0, 0] and not visited.any()
    pos = np.array([[5, 6, 7, 9], [1, 2, 3, 4]])
    tok = np.array([[500, 600, 700, 999], [11, 22, 33, 44]])
    valid = np.array([[True, False, True, False], [True, True, True, True]])
    s.write([20, 8], pos, tok, valid)
    p, t, c, v = s.read([8, 20, 3])
    assert v.tolist() == [True, True, False]
    assert c.tolist() == [4, 2, 0]
    assert p[1, :2].tolist() == [5, 7] and t[1, :2].tolist() == [500, 700]
    assert p[0].tolist() == [1, 2, 3, 4] and t[0].tolist() == [11, 22, 33, 44]
    assert s.count[s.rows_of([3])[0]] == NOT_VISITED


def test_unknown_ids_raise():
    s = SampleStore(np.arange(5), max_predictions=2, seq_len=8, vocab_size=10)
    with pytest.raises(KeyError, match="not held"):
        s.read([5])


def test_state_repartitions_by_example_id():
    full = SampleStore(np.arange(10), max_predictions=3, seq_len=16, vocab_size=50)
    rng = np.random.default_rng(0)
    full.write(np.arange(10), rng.integers(0, 16, (10, 3)), rng.integers(0, 50, (10, 3)),
               rng.random((10, 3)) < 0.7)
    halves = [SampleStore(np.arange(10)[i::2], max_predictions=3, seq_len=16, vocab_size=50) for i in (0, 1)]
    assert [h.load_rows(full.state_dict()) for h in halves] == [5, 5]
    merged = SampleStore(np.arange(10), max_predictions=3, seq_len=16, vocab_size=50)
    for h in halves:
        merged.load_rows(h.state_dict())
    for k in ("positions", "tokens", "count"):
        np.testing.assert_array_equal(getattr(merged, k), getattr(full, k))
