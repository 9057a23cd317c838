"""Session-parallel mini-batches (Hidasi et al., ICLR 2016, section 3.1.1), as a precomputed schedule.

GRU4Rec does not pad sessions to a common length. Each of the ``batch_size`` slots of the
mini-batch holds one session: at every step slot b feeds its session's current item as input
and the next item as target. When a slot's session has fed its last target, the next unused
session takes the slot at the next step and the slot's hidden state is zeroed before that step
(the reference training loops in hidasib/GRU4Rec ``gru4rec.py`` ``fit`` and
hidasib/GRU4Rec_PyTorch_Official ``SessionDataIterator._iter_data``: ``finished_mask`` rows of
``H`` set to 0). Several slots freeing at the same step take the next sessions in slot order,
lowest slot first, as the reference's ``iters[finished_mask] = maxiter + arange(...)`` does.

Where the reference differs, on purpose:

- once sessions run out it drops the idle rows (the mini-batch shrinks), and without extra
  negative samples it stops as soon as fewer than 2 sessions are left, so the tail of the last
  sessions is never trained on. Here the slots stay, marked inactive, and the schedule runs
  until every event of every session has been a target exactly once; the caller masks the
  inactive rows and columns out of the loss.
- it walks the data in chunks of the shortest remaining session (``minlen``) and yields one
  step at a time; here the whole epoch's [T, B] matrices are built up front with one numpy pass
  per distinct step at which slots free up (never Python work per event), so the trainer can
  feed several steps per ``tf.function`` call (:func:`iterate_chunks`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np


@dataclass(frozen=True, eq=False)
class Schedule:
    """One epoch of session-parallel mini-batches, T steps by B slots (read-only arrays).

    inputs, targets [T, B] int64: the item fed and the item to predict (0 where inactive: item 0
    may be a real item, so read ``active``, not the ids); reset [T, B] bool: the slot starts a
    new session at this step (its hidden state must be zeroed first), step 0 included;
    active [T, B] bool: the slot holds a session at this step; num_events: targets fed
    (``active.sum()``).
    """

    inputs: np.ndarray
    targets: np.ndarray
    reset: np.ndarray
    active: np.ndarray
    num_events: int


def _validate(offsets: np.ndarray, items: np.ndarray, batch_size: int) -> None:
    if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0:
        raise ValueError("session batching: offsets must be a [S + 1] array starting at 0")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("session batching: offsets must be non-decreasing (session s is "
                         "items[offsets[s]:offsets[s + 1]])")
    if items.ndim != 1 or items.size != offsets[-1]:
        raise ValueError(f"session batching: items must be a [offsets[-1]] = [{offsets[-1]}] array, "
                         f"got shape {items.shape}")
    if batch_size < 1:
        raise ValueError(f"session batching: batch_size must be at least 1, got {batch_size}")


def _assign_slots(steps: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot, first step) [K] of each session, given its number of steps [K] in schedule order.

    The first ``batch_size`` sessions start at step 0 in slots 0..; afterwards, whenever slots
    free up at a step, they take the next sessions lowest slot first. One loop turn per distinct
    freeing step, vectorised over the slots freeing at it.
    """
    count = steps.size
    slot = np.empty(count, np.int64)
    start = np.empty(count, np.int64)
    first = min(batch_size, count)
    slot[:first] = np.arange(first)
    start[:first] = 0
    free_at = np.full(batch_size, np.iinfo(np.int64).max)
    free_at[:first] = steps[:first]
    taken = first
    while taken < count:
        now = free_at.min()
        freed = np.flatnonzero(free_at == now)[:count - taken]
        sessions = np.arange(taken, taken + freed.size)
        slot[sessions] = freed
        start[sessions] = now
        free_at[freed] = now + steps[sessions]
        taken += freed.size
    return slot, start


def build_schedule(offsets: np.ndarray, items: np.ndarray, batch_size: int,
                   rng: Optional[np.random.Generator] = None) -> Schedule:
    """The session-parallel schedule of one epoch over sessions ``items[offsets[s]:offsets[s + 1]]``.

    offsets int64 [S + 1] (non-decreasing, from 0), items int64 [offsets[-1]] (each session's
    events in time order). Sessions shorter than 2 have no (input, target) pair and are skipped.
    ``rng`` shuffles the session order (the reference's ``train_random_order``); None keeps the
    given order, which should be by session start time (the reference's default ``time_sort``).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    _validate(offsets, items, batch_size)
    begins = offsets[:-1]
    lengths = np.diff(offsets)
    kept = np.flatnonzero(lengths >= 2)
    if rng is not None:
        kept = rng.permutation(kept)
    steps = lengths[kept] - 1
    slot, start = _assign_slots(steps, batch_size)
    num_steps = int((start + steps).max()) if kept.size else 0

    # one entry per (input, target) pair: session k's i-th pair sits at step start[k] + i
    num_events = int(steps.sum())
    within = np.arange(num_events) - np.repeat(np.cumsum(steps) - steps, steps)
    row = np.repeat(start, steps) + within
    column = np.repeat(slot, steps)
    source = np.repeat(begins[kept], steps) + within

    inputs = np.zeros((num_steps, batch_size), np.int64)
    targets = np.zeros((num_steps, batch_size), np.int64)
    active = np.zeros((num_steps, batch_size), bool)
    reset = np.zeros((num_steps, batch_size), bool)
    inputs[row, column] = items[source]
    targets[row, column] = items[source + 1]
    active[row, column] = True
    reset[start, slot] = True
    for array in (inputs, targets, reset, active):
        array.flags.writeable = False
    return Schedule(inputs, targets, reset, active, num_events)


def iterate_chunks(schedule: Schedule, steps: int) -> Iterator[Schedule]:
    """Consecutive [steps, B] slices of ``schedule`` (views), in order; the last one is shorter
    when ``steps`` does not divide T. Not padded: a padded all-inactive step would still move
    the parameters through the optimiser's momentum. Hidden states carry over between chunks."""
    if steps < 1:
        raise ValueError(f"session batching: steps must be at least 1, got {steps}")
    for begin in range(0, schedule.inputs.shape[0], steps):
        part = slice(begin, begin + steps)
        yield Schedule(schedule.inputs[part], schedule.targets[part], schedule.reset[part],
                       schedule.active[part], int(schedule.active[part].sum()))
