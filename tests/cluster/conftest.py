"""The cluster tier: tests against a real SLURM cluster (``make test-cluster`` starts a one-node one on this machine
with ``scripts/slurm_cluster.sh`` and stops it afterwards). Every module here is marked ``cluster`` (``pytestmark``),
which the fast and slow tiers leave out. Without a cluster that answers they skip, saying how to start one, unless
``OPTREPRO_REQUIRE_CLUSTER=1`` (set by ``make test-cluster``), where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_CONF = Path(os.environ.get("OPTREPRO_SLURM_DIR", "/tmp/optrepro-slurm")) / "slurm.conf"


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """The environment of the tier's commands: the cluster's SLURM_CONF, this package first on PYTHONPATH (the jobs
    inherit it: sbatch exports the environment), the tier's helpers (``pace``) importable."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and DEFAULT_CONF.is_file():
        env["SLURM_CONF"] = str(DEFAULT_CONF)
    import optrepro

    src = str(Path(optrepro.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    problem = None
    if shutil.which("sinfo") is None:
        problem = "no sinfo on PATH (SLURM's client is not installed)"
    else:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not done.stdout.strip():
            problem = f"sinfo does not answer ({(done.stderr or done.stdout).strip()[:300]})"
    if problem:
        message = f"no SLURM cluster: {problem}; start one with scripts/slurm_cluster.sh start (or make test-cluster)"
        if os.environ.get("OPTREPRO_REQUIRE_CLUSTER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return env


@pytest.fixture
def job_name() -> str:
    """A job name of its own per test, to count the test's SLURM jobs with sacct."""
    return f"optrepro-test-{uuid.uuid4().hex[:8]}"
