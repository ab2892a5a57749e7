"""``optrepro-dashboard PAPER|all``: one W&B report per paper, a panel grid per paper figure.

Each panel draws what the project's own figure draws (``optrepro.report``): the same metric against the same x-axis
(the target-budget ``epoch`` or ``grad_evals``), runs grouped by the same key (the method; TH: the optimizer), the
same aggregation (HT: median, TH and GC: mean; the band is W&B's min-max, the closest W&B has to the figures'
quartiles or range) and the same log scale. Each figure's grid has its own run set, filtered to the figure's
experiment (W&B group) and, for the sine figures, its omega. The W&B runs are those ``logger=wandb`` makes, one per
seed (``optrepro.wandb_runs``).

Offline (no W&B credentials, or ``--offline``) it writes the specification as JSON under
``outputs/dashboards/<paper>.json`` and prints the command that publishes it; online it publishes with
``wandb-workspaces`` (``pip install 'optrepro[wandb]'``) and prints the report's URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: a panel: (title, y metrics, x, log y)
Panel = tuple[str, list[str], str, bool]


def _figure(fid: str, experiment: str, panels: list[Panel], group: str = "method.name", agg: str = "mean",
            omega: float | None = None) -> dict[str, Any]:  # fmt: skip
    # training runs only: a method's source pre-training is a W&B run of its own (job_type source)
    filters = {"group": experiment, "job_type": "train"} | ({"config.task.omega": omega} if omega is not None else {})
    return {
        "figure": fid,
        "experiment": experiment,
        "filters": filters,
        "groupby": group,
        "aggregation": agg,
        "band": "minmax",
        "panels": [{"title": t, "y": y, "x": x, "log_y": log} for t, y, x, log in panels],
    }


SINE = [("train loss (MSE, target task)", ["train/loss"], "epoch", True)]
IMAGES = [("train loss", ["train/loss"], "epoch", True), ("test accuracy", ["test/acc"], "epoch", False)]
ODE = [("train loss", ["train/loss"], "epoch", True), ("test loss", ["test/loss"], "epoch", True)]
TH = [("train loss", ["train/loss"], "grad_evals", True), ("test accuracy", ["test/acc"], "grad_evals", False)]
TH_AE = [("train loss", ["train/loss"], "grad_evals", True), ("test loss", ["test/loss"], "grad_evals", True)]
OPTIMIZER = "optimizer._target_"

SPECS: dict[str, list[dict[str, Any]]] = {
    "ht": [
        *(
            _figure(f"HT Figure {f}", "ht/sine_f1", SINE, agg="median", omega=w)
            for f, w in (("1a", 74), ("1b", 137), ("8a", 95), ("8b", 116))
        ),  # fmt: skip
        _figure("HT Figure 2b", "ht/sine_f2b", SINE, agg="median"),
        _figure("HT Figure 3a", "ht/mnist_fmnist_f3a", IMAGES, agg="median"),
        _figure("HT Figure 3b", "ht/mnist_cifar10_f3b", IMAGES, agg="median"),
    ],
    "gc": [
        _figure("GC Figure 5", "gc/mnist_mlp_f5", IMAGES),
        _figure("GC Figure 6", "gc/lotka_volterra_f6", ODE),
        _figure("GC Figure 7", "gc/lorenz_f7", ODE),
    ],
    "hta": [
        _figure("HTA Table 2 / Figure 2", "hta/vgg_t2", [("test accuracy", ["test/acc"], "epoch", False)]),
        _figure("HTA Table 3", "hta/vgg_t3", [("test accuracy", ["test/acc"], "epoch", False)]),
        _figure("HTA Figure 3", "hta/vgg_f3", [("test accuracy", ["test/acc"], "epoch", False)]),
    ],
    "th": [
        _figure("TH Figure 4.4 (a)", "th/f4_4a", TH, group=OPTIMIZER),
        _figure("TH Figure 4.4 (b)", "th/f4_4b", TH, group=OPTIMIZER),
        _figure("TH Figure 4.4 (c)", "th/f4_4c", TH, group=OPTIMIZER),
        _figure("TH Figure 4.4 (d)", "th/f4_4d", TH_AE, group=OPTIMIZER),
        _figure("TH Figure 4.6 (e)", "th/f4_6e", TH, group=OPTIMIZER),
        _figure("TH Figure 4.6 (f)", "th/f4_6f", TH, group=OPTIMIZER),
        _figure("TH Figure 2.2 (MNIST)", "th/f2_mnist", TH, group=OPTIMIZER),
        _figure("TH Figure 2.2 (CIFAR-10)", "th/f2_cifar10", TH, group=OPTIMIZER),
        _figure("TH Figure 2.2 (CIFAR-100)", "th/f2_cifar100", TH, group=OPTIMIZER),
    ],
}
TITLES = {"ht": "HT: homotopy transfer", "gc": "GC: Gaussian continuation", "hta": "HTA: homotopy training",
          "th": "TH: INNA and Step-Tuned SGD"}  # fmt: skip


def spec(paper: str, entity: str | None, project: str) -> dict[str, Any]:
    return {"paper": paper, "title": TITLES[paper], "entity": entity, "project": project, "figures": SPECS[paper]}


def _filter_expression(filters: dict[str, Any]) -> str:
    parts = []
    for key, value in filters.items():
        name = {"group": "Group", "job_type": "JobType"}.get(key) or f"Config('{key.removeprefix('config.')}')"
        parts.append(f"{name} == {json.dumps(value)}")
    return " and ".join(parts)


def build_report(document: dict[str, Any]):
    """The ``wandb_workspaces`` report of a specification (saved by the caller)."""
    from optrepro.extras import require

    wr = require("wandb_workspaces.reports.v2", "wandb", "optrepro-dashboard")
    project = document["project"]
    where = {"project": project} | ({"entity": document["entity"]} if document["entity"] else {})  # else: yours
    blocks = [wr.H1(document["title"])]
    for figure in document["figures"]:
        runset = wr.Runset(**where, name=figure["figure"],
                           filters=_filter_expression(figure["filters"]), groupby=[figure["groupby"]])  # fmt: skip
        panels = [
            wr.LinePlot(
                title=f"{figure['figure']}: {p['title']}",
                x=p["x"],
                y=p["y"],
                log_y=p["log_y"],
                groupby_aggfunc=figure["aggregation"],
                groupby_rangefunc=figure["band"],
            )  # fmt: skip
            for p in figure["panels"]
        ]
        blocks += [wr.H2(figure["figure"]), wr.PanelGrid(runsets=[runset], panels=panels)]
    return wr.Report(**where, title=document["title"], blocks=blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optrepro-dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("paper", choices=[*SPECS, "all"])
    parser.add_argument("--project", default="optrepro")
    parser.add_argument("--entity", default=None, help="W&B entity (default: yours)")
    parser.add_argument("--offline", action="store_true", help="write the specification only")
    parser.add_argument("--out", type=Path, default=Path("outputs/dashboards"))
    args = parser.parse_args(argv)
    from optrepro.loggers import wandb_mode

    online = not args.offline and wandb_mode(None) == "online"
    for paper in SPECS if args.paper == "all" else [args.paper]:
        document = spec(paper, args.entity, args.project)
        if online:
            report = build_report(document)
            report.save()
            print(f"{paper}: {report.url}")
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{paper}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {path}; publish it with: wandb login && optrepro-dashboard {paper} --project {args.project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
