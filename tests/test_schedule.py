"""Which notebooks run side by side, and the runner that runs them so."""

from __future__ import annotations

import threading
import time

import pytest

from rbp import schedule
from rbp.params import load_params
from tests.conftest import ROOT

DEFAULT = load_params(ROOT / "params" / "default.yaml").notebooks


def test_models_wait_for_the_folds_and_every_other_notebook_for_all_before_it():
    assert DEFAULT == ["01_preprocess", "02_dnabert_cv", "03_lstm_cv", "03_cnn_cv", "03_kmer_lr_cv",
                       "03_ensemble_cv", "04_compare", "06_predict", "07_interpret"]
    waits = schedule.needs(DEFAULT)
    assert waits[0] == set()
    assert waits[1] == waits[2] == waits[3] == waits[4] == {0}  # the models: the folds alone
    assert waits[5] == {0, 1, 2, 3, 4}  # the ensemble: every model before it
    assert [waits[i] for i in (6, 7, 8)] == [set(range(6)), set(range(7)), set(range(8))]  # compare, predict, ...
    assert schedule.beside(waits) == {1, 2, 3, 4}  # the models; the rest run alone


def test_a_model_listed_after_compare_waits_for_it_and_a_sweeps_lengths_run_side_by_side():
    waits = schedule.needs(["01_preprocess", "03_lstm_cv", "04_compare", "03_cnn_cv", "07_interpret"])
    assert waits == [set(), {0}, {0, 1}, {0, 2}, {0, 1, 2, 3}]
    assert schedule.beside(waits) == set()  # each one needs the one before it, directly or not
    sweep = ["01_preprocess", "03_lstm_cv", "03_lstm_cv", "05_length_sweep"]  # one model at two lengths
    assert schedule.beside(schedule.needs(sweep)) == {1, 2}


def _recorder(seconds=0.05):
    lock, now, most, order = threading.Lock(), [0], [0], []

    def step(i):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
            order.append(("start", i))
        time.sleep(seconds)
        with lock:
            now[0] -= 1
            order.append(("end", i))

    return step, most, order


@pytest.mark.parametrize("jobs", [1, 2, 3, 5])
def test_the_runner_keeps_to_what_each_step_waits_for_and_to_the_number_of_jobs(jobs):
    waits = schedule.needs(DEFAULT)
    step, most, order = _recorder()
    schedule.run(len(DEFAULT), waits, jobs, step, stop=lambda: pytest.fail("nothing failed"))
    assert most[0] == min(jobs, 4)  # the four models at most
    started = [i for what, i in order if what == "start"]
    assert sorted(started) == list(range(len(DEFAULT)))
    for i, direct in enumerate(waits):
        assert all(order.index(("end", j)) < order.index(("start", i)) for j in direct)
    if jobs == 1:  # one after another, in the order listed
        assert started == list(range(len(DEFAULT)))


def test_a_failing_step_stops_the_others_and_its_error_is_raised():
    stopped, started = threading.Event(), []

    def step(i):
        started.append(i)
        if i == 2:
            raise ValueError("step 2 broke")
        if i == 1:  # runs until it is stopped
            assert stopped.wait(30)
            raise RuntimeError("stopped")

    waits = [frozenset(), frozenset({0}), frozenset({0}), frozenset({0, 1, 2})]
    with pytest.raises(ValueError, match="step 2 broke"):
        schedule.run(4, waits, 2, step, stop=stopped.set)
    assert stopped.is_set() and sorted(started) == [0, 1, 2]  # step 3 never started


def test_ctrl_c_in_a_step_stops_the_run_as_ctrl_c():
    def step(i):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        schedule.run(2, [frozenset(), frozenset()], 2, step, stop=lambda: None)


def test_steps_that_wait_for_a_step_that_never_runs_are_refused():
    with pytest.raises(ValueError, match=r"steps \[0, 1\] wait for steps that never run"):
        schedule.run(2, [frozenset({1}), frozenset({0})], 2, lambda i: None, stop=lambda: None)
