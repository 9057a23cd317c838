"""Session-parallel mini-batches: hand-written schedules, coverage under shuffling, bad input."""
import numpy as np
import pytest

from tfrs_app.sequences.batching import Schedule, build_schedule, iterate_chunks

A, B, C, D, E, F, G, H, I = range(1, 10)
# sessions [a b c], [d e], [f g h i]
OFFSETS = np.array([0, 3, 5, 9])
ITEMS = np.array([A, B, C, D, E, F, G, H, I])


def _check(schedule: Schedule, inputs, targets, reset, active):
    np.testing.assert_array_equal(schedule.inputs, inputs)
    np.testing.assert_array_equal(schedule.targets, targets)
    np.testing.assert_array_equal(schedule.reset, np.array(reset, bool))
    np.testing.assert_array_equal(schedule.active, np.array(active, bool))
    assert schedule.inputs.dtype == schedule.targets.dtype == np.int64
    assert schedule.num_events == int(np.sum(active))


def test_three_sessions_two_slots():
    # slot 0: a->b, b->c, then nothing is left for it; slot 1: d->e, then [f g h i] takes it at
    # step 1 (reset before it) and runs f->g, g->h, h->i
    _check(build_schedule(OFFSETS, ITEMS, 2),
           inputs=[[A, D], [B, F], [0, G], [0, H]],
           targets=[[B, E], [C, G], [0, H], [0, I]],
           reset=[[1, 1], [0, 1], [0, 0], [0, 0]],
           active=[[1, 1], [1, 1], [0, 1], [0, 1]])


def test_batch_larger_than_the_number_of_sessions():
    _check(build_schedule(OFFSETS, ITEMS, 5),
           inputs=[[A, D, F, 0, 0], [B, 0, G, 0, 0], [0, 0, H, 0, 0]],
           targets=[[B, E, G, 0, 0], [C, 0, H, 0, 0], [0, 0, I, 0, 0]],
           reset=[[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
           active=[[1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [0, 0, 1, 0, 0]])


def test_sessions_shorter_than_two_are_skipped():
    # sessions [a b], [x], [], [c d e] in one slot: [x] and [] have no (input, target) pair
    x = 42
    schedule = build_schedule(np.array([0, 2, 3, 3, 6]), np.array([A, B, x, C, D, E]), 1)
    _check(schedule, inputs=[[A], [C], [D]], targets=[[B], [D], [E]], reset=[[1], [1], [0]], active=[[1], [1], [1]])


def test_slots_freeing_together_take_sessions_lowest_slot_first():
    # [a b], [c d], [e f g], [h i]: slots 0 and 1 free after step 0 and take sessions 2 and 3 in that order
    schedule = build_schedule(np.array([0, 2, 4, 7, 9]), np.array([A, B, C, D, E, F, G, H, I]), 2)
    _check(schedule, inputs=[[A, C], [E, H], [F, 0]], targets=[[B, D], [F, I], [G, 0]],
           reset=[[1, 1], [1, 1], [0, 0]], active=[[1, 1], [1, 1], [1, 0]])


def test_no_usable_session_gives_an_empty_schedule():
    schedule = build_schedule(np.array([0, 1, 2]), np.array([A, B]), 3)
    assert schedule.inputs.shape == (0, 3) and schedule.num_events == 0


def _random_sessions(seed, count=300):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=count)
    offsets = np.r_[0, np.cumsum(lengths)]
    return offsets, np.arange(1, offsets[-1] + 1)  # every event its own id


def test_shuffled_schedule_is_deterministic_and_covers_every_event_once():
    offsets, items = _random_sessions(0)
    one = build_schedule(offsets, items, 16, np.random.default_rng(7))
    two = build_schedule(offsets, items, 16, np.random.default_rng(7))
    for field in ("inputs", "targets", "reset", "active"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    unshuffled = build_schedule(offsets, items, 16)
    assert not np.array_equal(one.targets, unshuffled.targets)

    firsts = offsets[:-1]
    long_enough = np.diff(offsets) >= 2
    expected_targets = np.setdiff1d(items, items[firsts])  # every event but a session's first
    np.testing.assert_array_equal(np.sort(one.targets[one.active]), expected_targets)
    assert one.num_events == expected_targets.size == len(items) - len(firsts)
    # each input is the event just before its target, and each session starts with a reset
    np.testing.assert_array_equal(one.inputs[one.active], one.targets[one.active] - 1)
    np.testing.assert_array_equal(np.sort(one.inputs[one.reset]), items[firsts[long_enough]])
    assert not np.any(one.reset & ~one.active)
    # inside a slot, a session's events follow each other on consecutive steps
    following = one.active[1:] & ~one.reset[1:]
    np.testing.assert_array_equal(one.inputs[1:][following], one.targets[:-1][following])
    assert one.active[0].all()


def test_schedule_is_read_only():
    schedule = build_schedule(OFFSETS, ITEMS, 2)
    with pytest.raises(ValueError):
        schedule.inputs[0, 0] = 5


def test_iterate_chunks_slices_in_order():
    offsets, items = _random_sessions(1, count=40)
    schedule = build_schedule(offsets, items, 4)
    chunks = list(iterate_chunks(schedule, 3))
    assert [c.inputs.shape[0] for c in chunks[:-1]] == [3] * (len(chunks) - 1)
    assert 1 <= chunks[-1].inputs.shape[0] <= 3
    for field in ("inputs", "targets", "reset", "active"):
        np.testing.assert_array_equal(np.concatenate([getattr(c, field) for c in chunks]), getattr(schedule, field))
    assert sum(c.num_events for c in chunks) == schedule.num_events
    with pytest.raises(ValueError, match="steps"):
        next(iterate_chunks(schedule, 0))


def test_a_million_events_build_vectorised():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 8, size=200_000)
    offsets = np.r_[0, np.cumsum(lengths)]
    schedule = build_schedule(offsets, rng.integers(1, 5000, offsets[-1]), 64, rng)
    assert schedule.num_events == offsets[-1] - len(lengths)
    assert schedule.active.sum() == schedule.num_events


@pytest.mark.parametrize("offsets, items, batch_size, argument", [
    (np.array([0, 3, 2, 9]), ITEMS, 2, "offsets"),
    (np.array([1, 3, 5, 9]), ITEMS, 2, "offsets"),
    (OFFSETS, ITEMS[:8], 2, "items"),
    (OFFSETS, ITEMS, 0, "batch_size"),
])
def test_bad_input_names_the_argument(offsets, items, batch_size, argument):
    with pytest.raises(ValueError, match=argument):
        build_schedule(offsets, items, batch_size)
