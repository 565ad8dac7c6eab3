"""The worker's job table and backoff, driven without sockets or trio."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maelstrom_core.job import ExitCode, JobCompleted, JobSpec, JobState
from maelstrom_core.proto import JobId, WorkerJobResponse, WorkerJobStatusUpdate
from maelstrom_worker._connection import Backoff
from maelstrom_worker._dispatcher import CancelTask, Dispatcher, Send, StartTask

SPEC = JobSpec(program="/bin/true", layers=())
DONE = JobCompleted(ExitCode(0))
A, B = JobId(1, 0), JobId(1, 1)


def start(dispatcher: Dispatcher, job_id: JobId) -> int:
    [action] = dispatcher.enqueue(job_id, SPEC)
    assert isinstance(action, StartTask)
    assert action.job_id == job_id
    return action.token


def test_states_then_one_response() -> None:
    d = Dispatcher()
    token = start(d, A)
    assert d.job_state(token, JobState.WAITING_FOR_ARTIFACTS) == [
        Send(WorkerJobStatusUpdate(A, JobState.WAITING_FOR_ARTIFACTS))
    ]
    assert d.job_state(token, JobState.WAITING_FOR_ARTIFACTS) == []  # no change, no message
    assert d.job_state(token, JobState.RUNNING) == [
        Send(WorkerJobStatusUpdate(A, JobState.RUNNING))
    ]
    assert d.job_state(token, JobState.COMPLETE) == []  # that is the response's job
    assert d.job_done(token, DONE) == [Send(WorkerJobResponse(A, DONE))]
    assert d.idle
    assert d.statistics().completed == 1


def test_a_cancelled_job_sends_nothing_ever_again() -> None:
    d = Dispatcher()
    token = start(d, A)
    assert d.cancel(A) == [CancelTask(token)]
    assert d.cancel(A) == []  # a second cancel is a no-op
    assert d.job_state(token, JobState.RUNNING) == []
    assert not d.idle  # its task still has to end
    # The container finished just as the cancel arrived: the outcome is dropped.
    assert d.job_done(token, DONE) == []
    assert d.idle
    assert d.statistics().cancelled == 1


def test_same_id_again_after_a_cancel_is_a_new_job() -> None:
    d = Dispatcher()
    old = start(d, A)
    d.cancel(A)
    new = start(d, A)
    assert new != old
    assert d.job_done(old, None) == []  # the old task dying must not touch the new job
    assert d.job_done(new, DONE) == [Send(WorkerJobResponse(A, DONE))]


def test_duplicate_enqueue_of_a_live_job_is_ignored() -> None:
    d = Dispatcher()
    start(d, A)
    assert d.enqueue(A, SPEC) == []
    assert d.statistics().live == 1


def test_unknown_cancel_is_ignored() -> None:
    assert Dispatcher().cancel(B) == []


def test_cancel_all_cancels_live_jobs_only() -> None:
    d = Dispatcher()
    ta, tb = start(d, A), start(d, B)
    d.job_done(ta, DONE)
    assert d.cancel_all() == [CancelTask(tb)]
    assert d.statistics().live == 0
    assert d.statistics().dying == 1


def test_a_task_stopped_from_outside_counts_as_cancelled() -> None:
    d = Dispatcher()
    token = start(d, A)
    assert d.job_done(token, None) == []
    assert d.idle
    assert d.statistics().cancelled == 1


@given(st.lists(st.sampled_from(["enqueue", "cancel", "done", "state"]), max_size=60))
def test_at_most_one_response_per_enqueue_and_none_after_cancel(ops: list[str]) -> None:
    d = Dispatcher()
    tokens: dict[int, int] = {}  # token -> job number
    live: dict[int, int] = {}  # job number -> token
    responses: list[int] = []
    cancelled: set[int] = set()
    job = 0
    for op in ops:
        if op == "enqueue":
            job += 1
            token = start(d, JobId(0, job))
            tokens[token] = job
            live[job] = token
        elif op == "cancel" and live:
            victim = min(live)
            d.cancel(JobId(0, victim))
            cancelled.add(victim)
            del live[victim]
        elif op == "done" and tokens:
            token = min(tokens)
            for action in d.job_done(token, DONE):
                assert isinstance(action, Send)
                responses.append(action.message.job_id.client_job_id)
            live.pop(tokens.pop(token), None)
        elif op == "state" and tokens:
            for action in d.job_state(min(tokens), JobState.RUNNING):
                assert isinstance(action, Send)
                assert action.message.job_id.client_job_id not in cancelled
    assert len(responses) == len(set(responses))
    assert not set(responses) & cancelled


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    low = Backoff(0.5, 4.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999])
def test_backoff_stays_within_half_to_full_step(draw: float) -> None:
    backoff = Backoff(1.0, 8.0, rng=lambda: draw)
    for step in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert step / 2 <= backoff.next_delay() <= step
