"""``optrepro-train``: the Hydra command line around ``optrepro.train.run``.

Nothing heavy is imported here: torch and Lightning load only when a job starts, so ``--help``, ``--cfg job`` and
shell completion answer at once.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from optrepro.config import ConfigError, config_dir, register_resolvers

# Registered at import, so that the processes of parallel launchers (joblib, submitit) resolve sweep paths too.
register_resolvers()


def _task(cfg: DictConfig) -> float | None:
    from optrepro.train import run

    try:
        metrics = run(cfg)
    except ConfigError as err:
        print(f"optrepro-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    value = metrics.get(metrics.get("monitor", ""))
    return value if isinstance(value, float) else None


def main() -> None:
    import hydra

    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
