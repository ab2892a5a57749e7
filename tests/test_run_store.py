"""The run store loses nothing: signals, kills, corrupt files, a second process, a full disk, bad sweep points.

Each test damages a real run the way the world does and checks that a rerun of the same config ends exactly as a
run that was never disturbed (``metrics.csv`` equal row for row).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from optrepro.checkpoints import LAST, resumable_epoch
from optrepro.loop import TrainingLoop
from optrepro.records import METRICS, SUMMARY, MetricsCSV, RunLock, read_rows, record_problems
from optrepro.train import run

pytestmark = pytest.mark.usefixtures("one_thread")

#: an ensemble of two that checkpoints every epoch: 1 source epoch + 4 target epochs
OVERRIDES = ("ensemble.size=2", "trainer.epochs=4", "trainer.checkpoint=true", "trainer.checkpoint_every=1")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def curves(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {d.name: pd.read_csv(d / METRICS) for d in sorted(Path(run_dir).glob("seed=*"))}


def assert_same_curves(a: Path, b: Path) -> None:
    ca, cb = curves(a), curves(b)
    assert list(ca) == list(cb) == ["seed=0", "seed=1"]
    for name in ca:
        pd.testing.assert_frame_equal(ca[name], cb[name])


def status(run_dir: Path) -> str:
    return json.loads((Path(run_dir) / SUMMARY).read_text())["status"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The undisturbed run every test compares against."""
    from conftest import tiny

    from optrepro.config import compose

    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run(compose([*tiny(*OVERRIDES), f"paths.run_dir={run_dir}"]))
    return run_dir


def signal_at(monkeypatch, budget_epoch: int, signum: int, times: int = 1) -> None:
    """Send ``signum`` to this process (``times`` times) from inside the epoch-end hook of ``budget_epoch``."""
    original = TrainingLoop.on_train_epoch_end

    def hook(self):
        original(self)
        if self.budget_epoch == budget_epoch:
            for _ in range(times):
                os.kill(os.getpid(), signum)

    monkeypatch.setattr(TrainingLoop, "on_train_epoch_end", hook)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_epoch_says_interrupted_and_the_rerun_ends_as_if_undisturbed(
    make_cfg, tmp_path, monkeypatch, capsys, straight, signum, code
):
    signal_at(monkeypatch, budget_epoch=1, signum=signum)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        run(make_cfg(*OVERRIDES, run_dir=run_dir))
    assert stopped.value.code == code
    assert status(run_dir) == "interrupted"
    assert [status(d) for d in sorted(run_dir.glob("seed=*"))] == ["interrupted", "interrupted"]
    # the epoch in progress was finished and checkpointed: source epoch + target epochs 0 and 1 are done
    assert resumable_epoch(run_dir / LAST) == 3
    assert [r["epoch"] for r in read_rows(run_dir / "seed=0" / METRICS)] == [-1, 0, 1]
    assert signal.getsignal(signum) is not None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    capsys.readouterr()
    metrics = run(make_cfg(*OVERRIDES, run_dir=run_dir))
    assert "at epoch 2 (trainer epoch 3" in capsys.readouterr().err
    assert metrics["runs/completed"] == 2 and status(run_dir) == "completed"
    assert_same_curves(run_dir, straight)


def test_a_second_signal_stops_at_once_and_the_last_checkpoint_is_the_state_to_resume(
    make_cfg, tmp_path, monkeypatch, straight
):
    from optrepro import interrupts

    monkeypatch.setattr(interrupts, "REPEAT_S", -1.0)  # the second signal counts as asked again, however soon
    signal_at(monkeypatch, budget_epoch=1, signum=signal.SIGTERM, times=2)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(make_cfg(*OVERRIDES, run_dir=run_dir))
    assert status(run_dir) == "interrupted"
    assert resumable_epoch(run_dir / LAST) == 2  # epoch 1 was not checkpointed: it is done again
    monkeypatch.undo()
    run(make_cfg(*OVERRIDES, run_dir=run_dir))
    assert_same_curves(run_dir, straight)


def test_one_signal_delivered_twice_at_once_is_one_request(make_cfg, tmp_path, monkeypatch):
    """SLURM and srun can both deliver a job's SIGTERM: two within interrupts.REPEAT_S still finish the epoch."""
    signal_at(monkeypatch, budget_epoch=1, signum=signal.SIGTERM, times=2)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(make_cfg(*OVERRIDES, run_dir=run_dir))
    assert resumable_epoch(run_dir / LAST) == 3  # target epoch 1 finished and checkpointed


def test_a_run_without_checkpoints_stops_at_the_next_batch_and_starts_over(make_cfg, tmp_path, monkeypatch):
    overrides = ("trainer.epochs=4", "trainer.checkpoint=false")
    reference = tmp_path / "reference"
    run(make_cfg(*overrides, run_dir=reference))
    signal_at(monkeypatch, budget_epoch=0, signum=signal.SIGTERM)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(make_cfg(*overrides, run_dir=run_dir))
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["status"] == "interrupted" and "starts over" in summary["resume"]
    monkeypatch.undo()
    run(make_cfg(*overrides, run_dir=run_dir))
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / METRICS), pd.read_csv(reference / METRICS))


def _finished_copy(straight: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-r", str(straight), str(run_dir)], check=True)
    return run_dir


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


CORRUPTIONS = {
    "member metrics deleted": lambda d: (d / "seed=1" / METRICS).unlink(),
    "member summary truncated": lambda d: _truncate(d / "seed=0" / SUMMARY, 100),
    "last row cut off": lambda d: _truncate(d / "seed=1" / METRICS, len((d / "seed=1" / METRICS).read_bytes()) - 6),
    "checkpoint truncated": lambda d: _truncate(d / LAST, 5000),
    "binary summary": lambda d: (d / SUMMARY).write_bytes(bytes(range(256))),
    "row with extra fields": lambda d: (d / "seed=0" / METRICS).open("a").write("1,2,3\n" * 3),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_rerun_redoes_a_finished_run_whose_records_are_broken(make_cfg, tmp_path, capsys, straight, corruption):
    run_dir = _finished_copy(straight, tmp_path)
    assert record_problems(run_dir, [0, 1], epochs=4) == []
    CORRUPTIONS[corruption](run_dir)
    capsys.readouterr()
    metrics = run(make_cfg(*OVERRIDES, run_dir=run_dir))
    err = capsys.readouterr().err
    assert "redone from the start" in err or "set aside" in err, err
    assert metrics["runs/completed"] == 2
    assert_same_curves(run_dir, straight)
    assert record_problems(run_dir, [0, 1], epochs=4) == []
    capsys.readouterr()
    run(make_cfg(*OVERRIDES, run_dir=run_dir))  # and now it is whole: skipped
    assert "already completed, skipped" in capsys.readouterr().err


def test_an_interrupted_run_with_a_truncated_checkpoint_sets_it_aside_and_starts_over(
    make_cfg, tmp_path, monkeypatch, capsys, straight
):
    signal_at(monkeypatch, budget_epoch=1, signum=signal.SIGTERM)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(make_cfg(*OVERRIDES, run_dir=run_dir))
    monkeypatch.undo()
    _truncate(run_dir / LAST, 3000)
    capsys.readouterr()
    run(make_cfg(*OVERRIDES, run_dir=run_dir))
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and "starts over from epoch 0" in err
    assert (run_dir / "checkpoints" / "last.ckpt.corrupt").is_file()
    assert_same_curves(run_dir, straight)


def test_resuming_keeps_earlier_rows_byte_for_byte_and_a_kill_inside_the_rewrite_loses_nothing(tmp_path):
    path = tmp_path / METRICS
    log = MetricsCSV(path)
    for epoch in range(-1, 5):
        log.write({"epoch": epoch, "train/loss": 1 / (epoch + 3), "lr": 1e-3})
    log.close()
    before = path.read_bytes()
    # a resume at epoch 2, killed while it rewrites (the test hook holds it between temp file and rename)
    script = f"from optrepro.records import MetricsCSV; MetricsCSV({str(path)!r}).resume(2)"
    env = {**os.environ, "PYTHONPATH": SRC, "OPTREPRO_TEST_PAUSE_IN_REWRITE": "30"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    tmp = path.with_name(path.name + ".tmp")
    deadline = time.monotonic() + 30
    while not tmp.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tmp.exists(), "the rewrite never started"
    proc.kill()
    proc.wait()
    assert path.read_bytes() == before  # the old file is whole
    kept = MetricsCSV(path).resume(2)
    assert [r["epoch"] for r in kept] == [-1, 0, 1]
    assert path.read_bytes() == b"".join(before.splitlines(keepends=True)[:4])  # header + 3 rows, unchanged


def test_a_run_held_by_a_live_process_is_skipped_and_a_dead_holder_blocks_nothing(make_cfg, tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from optrepro.records import RunLock
        assert RunLock({str(run_dir)!r}).acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert proc.stdout.readline().strip() == "held"
    assert RunLock(run_dir).held_elsewhere()
    capsys.readouterr()
    run(make_cfg(run_dir=run_dir))
    assert f"in progress in process {proc.pid}@" in capsys.readouterr().err
    assert not (run_dir / SUMMARY).exists()  # nothing written by the process that skipped
    proc.kill()
    proc.wait()
    holder_was = (run_dir / RunLock.NAME).read_bytes()
    assert not RunLock(run_dir).held_elsewhere()
    assert (run_dir / RunLock.NAME).read_bytes() == holder_was  # asking (as reports do) writes nothing
    assert run(make_cfg(run_dir=run_dir))["runs/completed"] == 1


def test_a_bad_point_fails_alone_and_the_sweep_exit_status_says_so(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "optrepro.cli",
        "-m",
        "experiment=ht/sine_f1",
        "profile=smoke",
        "method=random_init",
        "ensemble.size=1",
        "optimizer.lr=1e-3,-1,2e-3",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "optimizer.lr" in done.stderr
    summaries = {p.parent.parent.name.rpartition("=")[2]: p for p in sweep.glob("*/seed=0/summary.json")}
    statuses = {lr: json.loads(p.read_text())["status"] for lr, p in summaries.items()}
    assert statuses == {"0.001": "completed", "-1": "failed", "0.002": "completed"}
    refused = json.loads(summaries["-1"].read_text())
    assert refused["error"].startswith("refused: ") and "optimizer.lr" in refused["error"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]).returncode == 0


def test_a_full_disk_ends_the_run_with_one_message_and_no_partial_file(make_cfg, tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        run_dir = disk / "run"
        from optrepro.records import DiskFull

        # a model whose checkpoint (about 1.6 MB with Adam's moments) cannot fit; the rows and the summary can
        with pytest.raises(DiskFull, match="no space left on the device that holds .*last.ckpt"):
            run(make_cfg("model.hidden=256", "trainer.checkpoint_every=1", run_dir=run_dir))
        leftovers = [p.name for p in run_dir.rglob("*") if p.suffix == ".tmp"]
        assert leftovers == []
        summary = json.loads((run_dir / SUMMARY).read_text())
        assert summary["status"] == "failed" and "no space left" in summary["error"]
    finally:
        subprocess.run(["umount", str(disk)])


def test_the_report_names_every_run_it_cannot_read_and_counts_the_same_runs_everywhere(tmp_path, straight):
    from optrepro.report.cli import write_report

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("intact", "binary", "extra", "cut"):
        subprocess.run(["cp", "-r", str(straight), str(sweep / name)], check=True)
    (sweep / "binary" / "seed=0" / SUMMARY).write_bytes(b"\x80\x81\xfe" * 50)
    (sweep / "extra" / "seed=1" / METRICS).open("a").write("9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9\n")
    cut = sweep / "cut" / "seed=0" / METRICS
    text = cut.read_text().rstrip("\r\n")
    cut.write_text(text[: text.rindex(",") + 3] + "\r\n")  # the last cell cut to its first two characters
    report = write_report([sweep], tmp_path / "report").read_text()
    left_out = report.split("## Runs left out")[1]
    assert "3 run folders could not be read" in left_out
    assert f"{sweep / 'binary' / 'seed=0'} | summary.json: not valid JSON" in left_out
    assert f"{sweep / 'extra' / 'seed=1'} | metrics.csv: line" in left_out and "fields" in left_out
    assert f"{sweep / 'cut' / 'seed=0'} | metrics.csv: the last row is not the summary's final values" in left_out
    counted = report.split(" runs from ")[0].rsplit("\n", 1)[-1]
    assert counted == "5"  # 4 copies x 2 members, less the 3 left out
    assert len(pd.read_csv(tmp_path / "report" / "runs.csv")) == 5


@pytest.mark.parametrize(("n_jobs", "omp", "expected"), [(2, None, "half"), (-1, None, 1), (2, "3", None)])
def test_joblib_workers_get_their_share_of_the_cores(tmp_path, monkeypatch, n_jobs, omp, expected):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from optrepro.train import thread_share

    cores = len(os.sched_getaffinity(0))
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    target = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    hydra = OmegaConf.create({"launcher": {"_target_": target, "n_jobs": n_jobs}})
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hydra))
    assert thread_share() == (max(1, cores // 2) if expected == "half" else expected)
    hydra.launcher._target_ = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert thread_share() is None  # one job at a time: torch keeps its threads


def test_how_often_a_run_checkpoints_is_not_part_of_its_identity_but_what_it_computes_is(make_cfg):
    from optrepro.utils import config_hash

    plain = config_hash(make_cfg())
    assert config_hash(make_cfg("trainer.checkpoint=false")) == plain
    assert config_hash(make_cfg("trainer.checkpoint_every=1")) == plain
    assert config_hash(make_cfg("logger=tensorboard")) == plain
    assert config_hash(make_cfg("trainer.epochs=5")) != plain
    assert config_hash(make_cfg("optimizer.lr=0.5")) != plain


def test_an_ensemble_larger_than_the_open_files_limit_writes_every_member(tmp_path, monkeypatch):
    """300 members with a limit of 100 open files: each metrics.csv is opened per row, and every row is there."""
    import resource

    from optrepro import records

    monkeypatch.setattr(records, "KEEP_OPEN", 10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
    try:
        log = records.MemberLog(tmp_path, list(range(300)), {"train/loss": "min"})
        for epoch in range(3):
            for i in range(300):
                log.write(i, {"epoch": epoch, "train/loss": 1.0 / (epoch + i + 1)})
        log.finish({"config_hash": "x"})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    rows = read_rows(tmp_path / "seed=299" / METRICS)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[-1]["train/loss"] == 1.0 / 302
    assert record_problems(tmp_path, list(range(300)), epochs=3) == []
    # resuming such an ensemble keeps its rows too
    kept = records.MemberLog(tmp_path, list(range(300)), resume_before_epoch=2)
    kept.write(299, {"epoch": 2, "train/loss": 0.5})
    assert [r["epoch"] for r in read_rows(tmp_path / "seed=299" / METRICS)] == [0, 1, 2]
