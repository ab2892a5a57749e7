"""Run every preset under configs/experiment at profile=smoke, in one process, and print how each ended."""

import sys
import tempfile
import time

from optrepro.config import compose, experiment_names
from optrepro.train import run


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in experiment_names():
            start = time.perf_counter()
            try:
                cfg = compose([f"experiment={name}", "profile=smoke", f"paths.run_dir={tmp}/{name}"])
                metrics = run(cfg)
                value = metrics.get(cfg.monitor)
                print(f"ok    {name:32s} {time.perf_counter() - start:5.1f} s  {cfg.monitor} = {value:.4g}")
            except Exception as err:  # noqa: BLE001 - report every preset, then fail
                failures += 1
                print(f"FAIL  {name:32s} {type(err).__name__}: {err}")
    print(f"{len(experiment_names()) - failures} of {len(experiment_names())} presets ran at profile=smoke")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
