"""rbp.progress: a notebook's CV loop writes events, the driver's follower echoes them as they come."""

import threading
import time

from rbp.cv import FoldResult
from rbp.progress import Follower, ProgressFile, describe
from rbp.train import EpochLog, TrainResult


def test_events_written_by_one_side_are_echoed_by_the_other(tmp_path):
    path = tmp_path / "progress.jsonl"
    lines = []
    writer = ProgressFile(path, "LSTM", n_folds=2, max_epochs=3)

    def notebook():
        for fold in (1, 2):
            writer.fold_started(fold)
            writer.epoch_ended(fold, EpochLog(1, 0.6, 0.5, 0.81, 1e-3, 2.0))
        training = TrainResult(best_epoch=1, best_val_auc=0.81)
        writer.fold_ended(FoldResult(2, training, {}, None, None, 4.0))

    with Follower(path, lines.append, "03_lstm_cv", poll=0.05):
        thread = threading.Thread(target=notebook)
        thread.start()
        thread.join()
    assert lines == ["    LSTM fold 1/2: training", "    LSTM fold 1/2, epoch 1/3: validation AUC 0.810 (2 s)",
                     "    LSTM fold 2/2: training", "    LSTM fold 2/2, epoch 1/3: validation AUC 0.810 (2 s)",
                     "    LSTM fold 2/2 done: best epoch 1, validation AUC 0.810, 4 s"]


def test_a_quiet_step_says_it_is_still_running(tmp_path):
    lines = []
    with Follower(tmp_path / "none.jsonl", lines.append, "02_dnabert_cv", quiet=0.1, poll=0.05):
        time.sleep(0.35)
    assert lines and all(line.startswith("    02_dnabert_cv: still running, ") for line in lines)


def test_describe_an_epoch():
    event = {"event": "epoch", "model": "DNABERT (scratch)", "fold": 3, "folds": 5, "epoch": 2, "max_epochs": 5,
             "val_auc": 0.8766, "seconds": 11.2}
    assert describe(event) == "DNABERT (scratch) fold 3/5, epoch 2/5: validation AUC 0.877 (11 s)"


def test_a_killed_runs_progress_lines_are_not_replayed(tmp_path):
    """`kill -9` leaves a step's progress file behind; the step run again (`--resume`) starts a new one."""
    from rbp.pipeline import _progress, _progress_file
    from rbp.progress import ProgressFile

    output = tmp_path / "03_lstm_cv.ipynb"
    ProgressFile(_progress_file(output.stem), "LSTM", 2, 3).fold_started(1)  # the killed run's
    heard = []
    with _progress(output, heard.append):
        ProgressFile(_progress_file(output.stem), "LSTM", 2, 3).fold_started(2)
    assert heard == ["    LSTM fold 2/2: training"]
    assert not _progress_file(output.stem).exists()
