"""The arrows of docs/architecture.md: which part of the package may import which. Parsed from the source (every
``import`` statement, those inside functions too), so a forbidden import fails here whether or not it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import optrepro

PACKAGE = Path(optrepro.__file__).parent

#: part -> the parts it must not import (a part is a module or a sub-package of optrepro)
FORBIDDEN = {
    "config": {"*"},  # the config layer imports nothing of the project
    "utils": {"*"},
    "records": {"*"},
    "packing": {"*", "-utils"},  # which jobs pack: the launcher's planning, from configs alone
    "models": {"*", "-models", "-extras"},
    "optim": {"*", "-optim"},
    "methods": {"loop", "tasks", "train", "trainer", "data", "models", "ensemble", "report", "cli"},
    "tasks": {"loop", "train", "trainer", "data", "models", "report", "cli"},
    "data": {"methods", "models", "loop", "tasks", "train", "trainer", "ensemble", "report", "cli"},
    "ensemble": {"methods", "models", "loop", "tasks", "train", "trainer", "data", "report", "cli"},
    "loop": {"train", "trainer", "data", "models", "report", "cli"},
    "toys": {"loop", "tasks", "train", "trainer", "data", "models", "ensemble", "report", "cli"},
    # the SLURM launcher's logic runs in the submitting process too: configs and run folders, no training code
    "slurm": {"methods", "models", "data", "loop", "tasks", "train", "trainer", "ensemble", "optim", "report", "cli"},
    # reports read results from disk: no training code
    "report": {"methods", "models", "data", "loop", "tasks", "train", "trainer", "ensemble", "optim", "cli"},
}
#: the one import of training code a report module may make: the command line's --figure pictures
REPORT_CLI_MAY = {"illustrations"}
#: who may import the entry points (nobody imports optrepro.cli; the command line and the trainer of packs import
#: train; only the packed launcher, outside the package, imports packed)
ENTRY_POINTS = {"cli": set(), "train": {"cli", "packed"}, "packed": set()}


def part(module: str) -> str:
    """'optrepro.methods.hta' -> 'methods'; 'optrepro' -> ''."""
    return module.split(".")[1] if module.count(".") else ""


def modules() -> dict[str, set[str]]:
    """Every module of the package -> the optrepro modules it imports."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        out[name] = {m for m in imported if m == "optrepro" or m.startswith("optrepro.")}
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imported in graph.items():
        own = part(module)
        rules = FORBIDDEN.get(own, set())
        for target in imported:
            dest = part(target)
            if dest == own or not dest:
                continue
            if "*" in rules and f"-{dest}" not in rules:
                bad.append(f"{module} imports {target} ({own} imports nothing of the project)")
            elif dest in rules and not (module == "optrepro.report.cli" and dest in REPORT_CLI_MAY):
                bad.append(f"{module} imports {target} ({own} must not import {dest})")
            if dest in ENTRY_POINTS and own not in ENTRY_POINTS[dest]:
                bad.append(f"{module} imports {target} (only {ENTRY_POINTS[dest] or 'nobody'} may import {dest})")
    return sorted(set(bad))


def test_the_package_follows_the_architecture():
    graph = modules()
    assert {"optrepro.loop", "optrepro.tasks.base", "optrepro.report.ht"} <= set(graph)  # the walk found them
    assert violations(graph) == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("optrepro.report.ht", "optrepro.methods"),  # a report that recomputes with training code
        ("optrepro.config", "optrepro.train"),
        ("optrepro.methods.hta", "optrepro.tasks.base"),
        ("optrepro.loop", "optrepro.cli"),
        ("optrepro.grid", "optrepro.train"),
    ],
)
def test_a_forbidden_import_is_caught(module, target):
    graph = modules()
    graph[module] = graph[module] | {target}
    assert any(line.startswith(f"{module} imports {target}") for line in violations(graph))
