"""``optrepro-train``: the Hydra command line around ``optrepro.train.run``.

Nothing heavy is imported here: torch and Lightning load only when a job starts, so ``--help``, ``--cfg job`` and
shell completion answer at once (``scripts/bench_cli.py`` times them). Three things differ from plain Hydra:

- shell completion (``-sc query=bash``) of ``experiment=`` and ``sweep=`` offers the presets by their full names
  (``experiment=ht/sine_f1``); Hydra would offer the sub-folders as groups (``experiment/ht=``), which it then
  refuses as overrides. Every other word is Hydra's answer, with ``experiment/`` and ``sweep/`` written
  ``experiment=`` and ``sweep=``;
- ``--help`` uses ``configs/hydra/help/optrepro.yaml``, shows the nested groups as ``experiment: ht/sine_f1, ...``,
  and, like completion, lists the config groups from one copy of Hydra's config repository instead of one copy per
  group and kind (which took 1.6 of the 2.2 s of ``--help``);
- an option whose optional package is missing (``hydra/launcher=slurm``, ``hparams_search=...``) stops at once with
  the extra to install (``optrepro.extras``).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

from omegaconf import DictConfig

from optrepro.config import ConfigError, config_dir, register_resolvers
from optrepro.extras import require

# Registered at import, so that the processes of parallel launchers (joblib, submitit) resolve sweep paths too.
register_resolvers()

#: config groups whose options sit in sub-folders (configs/experiment/ht/sine_f1.yaml is experiment=ht/sine_f1)
NESTED_GROUPS = ("experiment", "sweep")
#: what separates the candidates in the answer to ``-sc query=<shell>`` (as Hydra's completion plugins print them)
SEPARATORS = {"bash": " ", "zsh": " ", "fish": "\n"}
HELP_FLAGS = ("--help", "-h")
#: overrides whose Hydra plugin is an optional extra: override -> (module, extra)
PLUGIN_EXTRAS = {
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}


def _task(cfg: DictConfig) -> float | None:
    """One job. A bad config stops a single run with status 2; in a sweep it fails that point only (its folder's
    summary says why) and Hydra runs the others, then exits non-zero."""
    from optrepro.train import run, sweep_point_refused

    try:
        metrics = run(cfg)
    except ConfigError as err:
        print(f"optrepro-train: error: {err}", file=sys.stderr)
        if not sweep_point_refused(cfg, err):
            sys.exit(2)
        raise
    value = metrics.get(metrics.get("monitor", ""))
    return value if isinstance(value, float) else None


def preset_names(group: str) -> list[str]:
    """Every option of a config group, sub-folders included, as the value of ``group=`` (e.g. 'ht/sine_f1')."""
    root = config_dir() / group
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def complete_presets(line: str) -> list[str] | None:
    """The candidates for the last word of ``line`` (a shell's ``COMP_LINE``) when that word is ``experiment=...``
    or ``sweep=...`` (``+`` or ``~`` before, comma-separated values after allowed), else None: Hydra answers."""
    if not line or line[-1].isspace():
        return None
    word = line.split()[-1]
    sign = word[0] if word[0] in "+~" else ""
    group, eq, value = word[len(sign) :].partition("=")
    if not eq or group not in NESTED_GROUPS:
        return None
    chosen, comma, partial = value.rpartition(",")
    head = f"{sign}{group}={chosen}{comma}"
    return [head + name for name in preset_names(group) if name.startswith(partial)]


def _as_nested_groups(candidates: list[str]) -> list[str]:
    """Hydra's candidates with the nested groups offered as ``experiment=`` / ``sweep=`` (not ``experiment/``)."""
    folders = {f"{group}/" for group in NESTED_GROUPS}
    return [c[:-1] + "=" if c.lstrip("+~") in folders else c for c in candidates]


def merge_nested_groups(help_text: str) -> str:
    """Hydra's help with the lines of a nested group's sub-folders (``experiment/ht: sine_f1, sine_f2b``) merged into
    one line of full names, the way they are chosen (``experiment: ..., ht/sine_f1, ht/sine_f2b, ...``)."""
    out: list[str] = []
    where: dict[str, int] = {}  # group -> index of its line in out
    names: dict[str, list[str]] = {}
    for line in help_text.split("\n"):
        group, slash, rest = line.partition("/")
        folder, colon, options = rest.partition(": ")
        if group in NESTED_GROUPS and slash and colon and folder and " " not in folder:
            if group not in where:
                where[group] = len(out)
                out.append("")
            names.setdefault(group, []).extend(f"{folder}/{o}" for o in options.split(", "))
        else:
            out.append(line)
    for group, i in where.items():
        out[i] = f"{group}: {', '.join(sorted(names[group]))}"
    return "\n".join(out)


def _completion_shell(argv: list[str]) -> str | None:
    """The shell of a completion query (``-sc query=bash``) that this module answers, else None."""
    if "-sc" not in argv and "--shell-completion" not in argv:
        return None
    shells = [a.partition("=")[2] for a in argv if a.startswith("query=")]
    return shells[0] if shells and shells[0] in SEPARATORS else None


@contextmanager
def _one_repository_copy() -> Iterator[None]:
    """While active, Hydra lists config groups from one copy of its config repository per primary config and
    overrides, instead of one copy per call.

    ``--help`` lists every group by calling ``ConfigLoaderImpl.get_group_options`` once per group and kind (about 150
    calls here), and completion once or three times per top-level group; each call deep-copies the whole
    repository (every structured config of Hydra and its plugins, ~15 ms) and sets its search path from the same
    arguments, so the copies are all alike. Nothing changes if Hydra's internals are not as expected.
    """
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.object_type import ObjectType
    except ImportError:
        ConfigLoaderImpl = None  # noqa: N806
    if ConfigLoaderImpl is None or not hasattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo"):
        yield
        return
    original = ConfigLoaderImpl.get_group_options
    repos: dict[tuple, object] = {}

    def get_group_options(self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None):
        key = (id(self), config_name, tuple(overrides or ()))
        if key not in repos:
            repos[key] = self._parse_overrides_and_create_caching_repo(config_name, list(overrides or ()))[1]
        return repos[key].get_group_options(group_name, results_filter)

    ConfigLoaderImpl.get_group_options = get_group_options
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original


def check_extras(argv: list[str]) -> None:
    """Raise ``ConfigError`` naming the extra to install when an override needs a Hydra plugin that is missing."""
    for arg in argv:
        override = arg.lstrip("+")
        if override in PLUGIN_EXTRAS:
            require(*PLUGIN_EXTRAS[override], option=override)
        elif override.startswith("hparams_search="):  # every search runs on the Optuna sweeper
            require("hydra_plugins.hydra_optuna_sweeper", "optuna", option=override)


def _hydra_main() -> None:
    import hydra

    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_task)()


def _complete(shell: str) -> None:
    """Answer a completion query: the presets of a nested group here, anything else from Hydra."""
    candidates = complete_presets(os.environ.get("COMP_LINE", ""))
    if candidates is not None:
        print(SEPARATORS[shell].join(candidates))
        return
    answer = io.StringIO()
    try:
        with _one_repository_copy(), redirect_stdout(answer):
            _hydra_main()
    finally:
        print(SEPARATORS[shell].join(_as_nested_groups(answer.getvalue().split())))


def main() -> None:
    argv = sys.argv[1:]
    shell = _completion_shell(argv)
    if shell is not None:
        _complete(shell)
        return
    try:
        check_extras(argv)
    except ConfigError as err:
        print(f"optrepro-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    if any(a in HELP_FLAGS for a in argv) or "--hydra-help" in argv:
        app_help = any(a in HELP_FLAGS for a in argv) and not any(a.startswith("hydra/help=") for a in argv)
        if app_help and (config_dir() / "hydra" / "help" / "optrepro.yaml").is_file():  # another config dir may not
            sys.argv.append("hydra/help=optrepro")
        text = io.StringIO()
        try:
            with _one_repository_copy(), redirect_stdout(text):
                _hydra_main()
        finally:
            print(merge_nested_groups(text.getvalue()), end="")
        return
    _hydra_main()


if __name__ == "__main__":
    main()
