"""The dashboards draw what the runs log: for every panel of every paper's specification, the metric and the
x-axis are keys that a smoke run of that figure's preset sends to W&B, and the run set's grouping key and filters are
keys of its W&B config (read back from the offline run files)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import wandb_records

from optrepro.config import compose
from optrepro.dashboard import SPECS, main, spec
from optrepro.train import run

pytest.importorskip("wandb")
pytestmark = pytest.mark.usefixtures("one_thread")

EXPERIMENTS = sorted({figure["experiment"] for figures in SPECS.values() for figure in figures})


def logged(run_file) -> tuple[set[str], dict]:
    """(history keys, config) of an offline W&B run file."""
    keys, config = set(), {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            keys |= {i.key or ".".join(i.nested_key) for i in record.history.item}
        elif kind == "config":
            config |= {i.key: json.loads(i.value_json) for i in record.config.update}
        elif kind == "run":  # the config given to wandb.init travels in the run record
            config |= {i.key: json.loads(i.value_json) for i in record.run.config.update}
            config["__group__"] = record.run.run_group
            config["__job_type__"] = record.run.job_type
    return keys, config


def lookup(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_panel_reads_keys_that_its_preset_logs(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(compose([f"experiment={experiment}", "profile=smoke", "logger=wandb", f"paths.run_dir={tmp_path}"]))
    trained = [logged(f) for f in sorted(tmp_path.rglob("run-*.wandb"))]
    trained = [(keys, config) for keys, config in trained if config.get("__job_type__") == "train"]
    assert trained  # one per member; a source pre-training, if any, is a W&B run of its own (job_type source)
    keys, config = trained[0]
    figures = [f for figures in SPECS.values() for f in figures if f["experiment"] == experiment]
    for figure in figures:
        assert config["__group__"] == figure["filters"]["group"]
        assert config["__job_type__"] == figure["filters"]["job_type"]
        lookup(config, figure["groupby"])  # the grouping key is in every run's config
        for key in figure["filters"]:
            if key.startswith("config."):
                lookup(config, key.removeprefix("config."))
        for panel in figure["panels"]:
            assert panel["x"] in keys, (figure["figure"], panel["x"])
            assert set(panel["y"]) <= keys, (figure["figure"], panel["y"])


def test_offline_the_specification_is_written_with_the_command_that_publishes_it(tmp_path, capsys):
    assert main(["all", "--offline", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for paper in SPECS:
        document = json.loads((tmp_path / f"{paper}.json").read_text())
        assert document == json.loads(json.dumps(spec(paper, None, "optrepro")))
        assert f"optrepro-dashboard {paper} --project optrepro" in printed
    ht = {f["figure"]: f for f in SPECS["ht"]}
    assert ht["HT Figure 1b"]["filters"] == {"group": "ht/sine_f1", "job_type": "train", "config.task.omega": 137}
    assert ht["HT Figure 1b"]["aggregation"] == "median" and ht["HT Figure 1b"]["panels"][0]["log_y"]


@pytest.fixture
def project_lookup(monkeypatch):
    """W&B's GraphQL answer to 'which project is ENTITY/PROJECT' (the one call a report's model needs): no network."""
    interface = pytest.importorskip("wandb_workspaces.reports.v2.interface")
    monkeypatch.setattr(interface, "_get_api", lambda: SimpleNamespace(default_entity="someone"))
    monkeypatch.setattr(interface, "execute_graphql", lambda *a, **k: {"project": {"internalId": "UHJvamVjdDox"}})
    return interface


@pytest.mark.parametrize("paper", sorted(SPECS))
def test_the_report_published_online_holds_every_figure_of_the_specification(project_lookup, paper):
    from optrepro.dashboard import build_report

    document = spec(paper, "someone", "optrepro")
    model = build_report(document)._to_model().model_dump(by_alias=True, mode="json")  # what Report.save uploads
    grids = [b for b in model["spec"]["blocks"] if b.get("type") == "panel-grid"]
    assert len(grids) == len(document["figures"])
    for grid, figure in zip(grids, document["figures"]):
        (runset,) = grid["metadata"]["runSets"]
        assert runset["name"] == figure["figure"]
        filters = {(f["key"]["section"], f["key"]["name"]): f["value"] for f in runset["filters"]["filters"]}
        expected = {("run", "group"): figure["filters"]["group"], ("run", "jobType"): "train"}
        if "config.task.omega" in figure["filters"]:
            expected[("config", "task.omega")] = figure["filters"]["config.task.omega"]
        assert filters == expected
        panels = grid["metadata"]["panelBankSectionConfig"]["panels"]
        assert len(panels) == len(figure["panels"])
        for panel, wanted in zip(panels, figure["panels"]):
            config = panel["config"]
            assert config["metrics"] == wanted["y"] and config["xAxis"] == wanted["x"]
            assert bool(config["yLogScale"]) == wanted["log_y"]
            assert config["groupAgg"] == figure["aggregation"] and config["groupArea"] == "minmax"


def test_online_each_paper_is_saved_as_a_report_and_its_address_printed(project_lookup, monkeypatch, capsys):
    from wandb_workspaces.reports.v2 import Report

    import optrepro.loggers

    saved = []
    monkeypatch.setattr(optrepro.loggers, "wandb_mode", lambda mode: "online")
    monkeypatch.setattr(Report, "save", lambda self, *a, **k: saved.append(self.title) or self)
    monkeypatch.setattr(Report, "url", property(lambda self: f"https://wandb.ai/x/{self.title[:2]}"), raising=False)
    assert main(["all"]) == 0  # no --entity: the W&B default entity
    assert len(saved) == len(SPECS)
    printed = capsys.readouterr().out
    assert all(f"{paper}: https://wandb.ai/x/" in printed for paper in SPECS)
