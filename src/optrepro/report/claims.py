"""The claims scoreboard: every paper claim the project can test from its runs, as data, and its verdict.

Each ``Claim`` names the runs it reads (``experiments`` and ``filters``), the value each run contributes
(``metric``: a ``metrics.csv`` column at the last logged epoch of the target budget (``at="final"``) or averaged
over it (``at="mean"``, the area under the curve: "descends faster"), or a key of ``summary.json``'s ``final``
(``at="summary"``, the toy experiments)), how runs are pooled into one number per group (``stat``: median or mean
across runs), and the comparison:

- ``better``: group ``a`` (the best of its names) is better than ``factor`` times each group of ``b``
  (``better="lower"``: ``A < factor * B``; ``"higher"``: ``A > factor * B``);
- ``close``: ``A / B`` lies within ``[1 / (1 + tolerance), 1 + tolerance]`` for each ``b`` ("about equal");
- ``within``: ``abs(A - target) <= tolerance`` (the paper's number);
- ``exceeds``: ``A > target``.

With ``per`` (a runs column) and ``per_values`` the comparison must hold at each of those values (HT Figure 2a:
at every large omega).

Verdict rule (``verdict``):

- ``not run``: no completed run for some group the comparison needs (never ``reproduced``);
- ``reproduced``: the comparison holds and every run used is at paper scale (profile ``paper``, each of the claim's
  ``full`` settings at the paper's value, at least ``seeds`` runs per group, every ``per_values`` present) and none
  is a subset run (``task.data`` or ``task.source`` = ``mnist5k``, or a ``task.max_train_samples`` cap);
- ``not reproduced``: the comparison fails at paper scale;
- ``partial: subset or reduced scale``: the comparison holds, but on a subset or below paper scale;
- ``not reproduced (reduced scale)``: the comparison fails, on a subset or below paper scale. A failure at reduced
  scale is kept apart from ``partial``: it is evidence against the claim at that scale, not a verdict on the
  paper's setting, and it is not a success of any kind.

Runs whose status is not ``completed`` (diverged, failed, running) are never used; the ``left out`` column counts
them with the reason, as it counts completed runs without the metric and, for claims with ``drop_short``, the
grid-search stage's short runs (TH chapter 4: 10% of the budget).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optrepro.records import read_summary
from optrepro.report.series import series_labels

VERDICTS = (
    "reproduced",
    "not reproduced",
    "partial: subset or reduced scale",
    "not reproduced (reduced scale)",
    "not run",
)
COLUMNS = ["claim id", "paper", "where", "claim", "paper's number", "ours", "runs", "left out", "scale", "verdict"]
#: claims.csv also has ``values``: JSON of each pooled number ("group" or "per=value/group" -> number)
CSV_COLUMNS = [*COLUMNS, "values"]
START, END = "<!-- claims:start -->", "<!-- claims:end -->"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str  # HT | GC | HTA | TH
    where: str  # figure or table
    claim: str  # in words
    experiments: tuple[str, ...]  # runs.experiment values
    metric: str  # metrics.csv column, or summary final key ("{}" is replaced by each group's name)
    comparison: str  # better | close | within | exceeds
    a: tuple[str, ...] = ()  # group A's names (the best of them counts); () for a claim on one value
    b: tuple[str, ...] = ()  # the groups A is compared with
    group_by: str | None = "method"  # runs column naming the groups; None: the groups are inside each run's summary
    filters: tuple[tuple[str, object], ...] = ()  # (runs column or dotted config key, value or tuple of values)
    at: str = "final"  # final | mean | summary
    stat: str = "median"  # across runs: median | mean
    better: str = "lower"  # lower | higher
    factor: float = 1.0
    tolerance: float | None = None
    target: float | None = None
    paper_number: str = ""
    full: tuple[tuple[str, int], ...] = ()  # paper scale: dotted config key -> the paper's value
    seeds: int = 1  # the paper's runs per group
    per: str | None = None
    per_values: tuple = ()
    drop_short: bool = False  # leave out runs shorter than half the profile's budget (a grid-search stage)


def _sine(fid: str, omega: int) -> Claim:
    return Claim(
        f"HT-F{fid}",
        "HT",
        f"Figure {fid} (omega {omega})",
        "median final train loss of the homotopy below warm start's and random init's (paper: up to 100x lower)",
        ("ht/sine_f1",),
        "train/loss",
        "better",
        ("data_homotopy",),
        ("warm_start", "random_init"),
        filters=(("omega", omega),),
        paper_number="up to 2 orders of magnitude lower",
        full=(("trainer.epochs", 2500), ("task.n_samples", 10000)),
        seeds=100,
    )


def _gc_saddle(experiment: str, suffix: str, reading: str = "") -> list[Claim]:
    """GC Figure 4's two saddles on ``experiment``: a = 0.01 ends with lambda 0, a = 0.02 stalls with lambda > 0."""
    where = "Figure 4 (a = {})" + (", the authors' gradient" if suffix else "")
    common = dict(group_by=None, at="summary", full=(("task.iterations", 3000),))
    return [
        Claim(
            f"GC-F4-a0.01{suffix}",
            "GC",
            where.format(0.01),
            f"{reading} good saddle: lambda reaches 0 (final lambda within 0.01 of 0), beta = 0".strip(),
            (experiment,),
            "final_lambda/a=0.01,beta=0.0",
            "within",
            tolerance=0.01,
            target=0.0,
            paper_number="lambda 0 at a minimum",
            **common,
        ),
        Claim(
            f"GC-F4-a0.02{suffix}",
            "GC",
            where.format(0.02),
            f"{reading} bad saddle: lambda stalls above 0 without regularization (final lambda > 0.01), "
            "beta = 0".strip(),
            (experiment,),
            "final_lambda/a=0.02,beta=0.0",
            "exceeds",
            target=0.01,
            paper_number="lambda stalls > 0",
            **common,
        ),
    ]


def _hta_t1(n: int, starts: int, plain: int) -> list[Claim]:
    common = dict(group_by=None, at="summary", tolerance=0.05, full=(("task.starts", 4096),))
    return [
        Claim(
            f"HTA-T1-n{n}",
            "HTA",
            f"Table 1, n = {n}",
            f"share of starts from which BFGS along the homotopy (eq. 35, L 0.9 -> 0.1) reaches the global minimum "
            f"is the paper's {starts} of {starts} (within 0.05)",
            ("hta/function_t1",),
            f"t1/homotopy1_share_n{n}",
            "within",
            target=1.0,
            paper_number=f"{starts} of {starts}",
            **common,
        ),
        Claim(
            f"HTA-T1-n{n}-bfgs",
            "HTA",
            f"Table 1, n = {n}",
            f"share of starts from which BFGS alone reaches the global minimum is the paper's {plain} of {starts} "
            "(within 0.05)",
            ("hta/function_t1",),
            f"t1/plain_share_n{n}",
            "within",
            target=plain / starts,
            paper_number=f"{plain} of {starts}",
            **common,
        ),
    ]


def _hta_t2(depth: int, plain: float, hta: float) -> Claim:
    return Claim(
        f"HTA-T2-vgg{depth}",
        "HTA",
        f"Table 2, VGG{depth}",
        "final-epoch test accuracy (mean over runs) of HTA above plain SGD's, CIFAR-10",
        ("hta/vgg_t2",),
        "test/acc",
        "better",
        ("hta_authors",),
        ("plain",),
        filters=(("model.depth", depth),),
        stat="mean",
        better="higher",
        paper_number=f"error {plain} % -> {hta} %",
        full=(("trainer.epochs", 620),),
    )


def _hta_t3(depth: int, mean: float, std: float) -> Claim:
    return Claim(
        f"HTA-T3-vgg{depth}",
        "HTA",
        f"Table 3, VGG{depth}",
        f"mean final test accuracy of HTA over 5 repeats is the paper's {mean} % (within 0.5 points)",
        ("hta/vgg_t3",),
        "test/acc",
        "within",
        ("hta_authors",),
        filters=(("model.depth", depth),),
        stat="mean",
        better="higher",
        tolerance=0.005,
        target=mean / 100,
        paper_number=f"{mean} +- {std} %",
        full=(("trainer.epochs", 620),),
        seeds=5,
    )


def _hta_f3(depth: int, conv: float, plain: float) -> Claim:
    return Claim(
        f"HTA-F3-vgg{depth}",
        "HTA",
        f"Figure 3, VGG{depth}",
        "final test accuracy with the homotopy on the conv part only above plain SGD's",
        ("hta/vgg_f3",),
        "test/acc",
        "better",
        ("hta_conv",),
        ("plain",),
        filters=(("model.depth", depth),),
        stat="mean",
        better="higher",
        paper_number=f"{conv} % vs {plain} %",
        full=(("trainer.epochs", 620),),
    )


_TH44 = ("SGD", "StepTunedSGD", "INNA", "RMSprop", "Adam")


def _th_f44(problem: str, epochs: int, best: tuple[str, ...], what: str) -> Claim:
    return Claim(
        f"TH-F4.4{problem}",
        "TH",
        f"Figure 4.4 ({problem})",
        f"{what}: lowest mean final train loss of the five optimizers",
        (f"th/f4_4{problem}",),
        "train/loss",
        "better",
        best,
        tuple(o for o in _TH44 if o not in best),
        group_by="optimizer",
        filters=(("task.reuse_batch", (None, 1)),),
        stat="mean",
        full=(("trainer.epochs", epochs),),
        seeds=3,
        drop_short=True,
    )


CLAIMS: list[Claim] = [
    _sine("1a", 74),
    _sine("1b", 137),
    _sine("8a", 95),
    _sine("8b", 116),
    Claim(
        "HT-F2a",
        "HT",
        "Figure 2a",
        "homotopy lowest for large omega: its median final train loss below both baselines' at each omega of "
        "74, 95, 116, 137",
        ("ht/sine_f1",),
        "train/loss",
        "better",
        ("data_homotopy",),
        ("warm_start", "random_init"),
        per="omega",
        per_values=(74, 95, 116, 137),
        paper_number="homotopy lowest for large omega",
        full=(("trainer.epochs", 2500), ("task.n_samples", 10000)),
        seeds=100,
    ),
    Claim(
        "HT-F2b",
        "HT",
        "Figure 2b (omega 137, cosine lr)",
        "median final train loss of the homotopy below warm start's and random init's",
        ("ht/sine_f2b",),
        "train/loss",
        "better",
        ("data_homotopy",),
        ("warm_start", "random_init"),
        paper_number="homotopy converges to a lower loss",
        full=(("trainer.epochs", 3600), ("task.n_samples", 10000)),
        seeds=100,
    ),
    Claim(
        "HT-F3a-eq",
        "HT",
        "Figure 3a (MNIST -> FashionMNIST)",
        "homotopy about equal to warm start: median final train loss within a factor 1.25 of warm start's",
        ("ht/mnist_fmnist_f3a", "ht/mnist5k_fmnist_f3a"),
        "train/loss",
        "close",
        ("data_homotopy",),
        ("warm_start",),
        tolerance=0.25,
        paper_number="about equal to warm start",
        full=(("trainer.epochs", 30),),
        seeds=10,
    ),
    Claim(
        "HT-F3a-fast",
        "HT",
        "Figure 3a (MNIST -> FashionMNIST)",
        "homotopy faster than random init: median over runs of the train loss averaged over the target epochs "
        "below random init's",
        ("ht/mnist_fmnist_f3a", "ht/mnist5k_fmnist_f3a"),
        "train/loss",
        "better",
        ("data_homotopy",),
        ("random_init",),
        at="mean",
        paper_number="faster than random init",
        full=(("trainer.epochs", 30),),
        seeds=10,
    ),
    Claim(
        "HT-F3b",
        "HT",
        "Figure 3b (MNIST -> CIFAR-10)",
        "homotopy lower train loss in fewer epochs: median over runs of the train loss averaged over the target "
        "epochs below warm start's and random init's",
        ("ht/mnist_cifar10_f3b",),
        "train/loss",
        "better",
        ("data_homotopy",),
        ("warm_start", "random_init"),
        at="mean",
        paper_number="lower train loss in fewer epochs",
        full=(("trainer.epochs", 30),),
        seeds=10,
    ),
    *_gc_saddle("gc/saddle_f4", ""),
    *_gc_saddle("gc/saddle_f4_authors", "-authors", " with the gradient of the authors' notebook,"),
    Claim(
        "GC-F5-acc",
        "GC",
        "Figure 5 (30-layer MLP, MNIST)",
        "with continuation the mean final train accuracy is about 94 % (within 2 points)",
        ("gc/mnist_mlp_f5",),
        "train/acc",
        "within",
        ("gaussian_continuation",),
        stat="mean",
        better="higher",
        tolerance=0.02,
        target=0.94,
        paper_number="~94 %",
        full=(("trainer.epochs", 200),),
        seeds=10,
    ),
    Claim(
        "GC-F5",
        "GC",
        "Figure 5 (30-layer MLP, MNIST)",
        "mean final train accuracy with continuation above without (stuck at 60-90 %)",
        ("gc/mnist_mlp_f5",),
        "train/acc",
        "better",
        ("gaussian_continuation",),
        ("plain",),
        stat="mean",
        better="higher",
        paper_number="~94 % vs 60-90 %",
        full=(("trainer.epochs", 200),),
        seeds=10,
    ),
    Claim(
        "GC-F6",
        "GC",
        "Figure 6 (Lotka-Volterra)",
        "continuation descends faster: mean over runs of the train MSE averaged over epochs below plain's",
        ("gc/lotka_volterra_f6",),
        "train/loss",
        "better",
        ("gaussian_continuation",),
        ("plain",),
        at="mean",
        stat="mean",
        paper_number="descends faster",
        full=(("trainer.epochs", 400),),
        seeds=5,
    ),
    Claim(
        "GC-F7",
        "GC",
        "Figure 7 (Lorenz)",
        "mean final train MSE with continuation below without (stuck near 1e1)",
        ("gc/lorenz_f7",),
        "train/loss",
        "better",
        ("gaussian_continuation",),
        ("plain",),
        stat="mean",
        paper_number="lower and more stable; without: ~1e1",
        full=(("trainer.epochs", 200),),
        seeds=5,
    ),
    *_hta_t1(2, 36, 24),
    *_hta_t1(4, 1296, 864),
    *_hta_t1(6, 4096, 991),
    _hta_t2(11, 7.83, 7.02),
    _hta_t2(13, 5.82, 5.14),
    _hta_t2(16, 6.14, 5.71),
    _hta_t2(19, 6.35, 5.88),
    _hta_t3(11, 91.53, 0.09),
    _hta_t3(13, 92.76, 0.22),
    _hta_f3(11, 91.61, 91.01),
    _hta_f3(13, 93.09, 92.29),
    Claim(
        "TH-T3.1-off",
        "TH",
        "Table 3.1 (off the manifold)",
        "no start off the stable manifold ends at the saddle (share within 0.02 of 0 %)",
        ("th/saddle_t3_1",),
        "saddle/off_manifold_share_at_saddle",
        "within",
        group_by=None,
        at="summary",
        tolerance=0.02,
        target=0.0,
        paper_number="0 %",
        full=(("task.starts", 1000),),
    ),
    Claim(
        "TH-T3.1-on",
        "TH",
        "Table 3.1 (on the manifold)",
        "every start on the stable manifold ends at the saddle (share within 0.02 of 100 %)",
        ("th/saddle_t3_1",),
        "saddle/on_manifold_share_at_saddle",
        "within",
        group_by=None,
        at="summary",
        tolerance=0.02,
        target=1.0,
        paper_number="100 %",
        full=(("task.starts", 1000),),
    ),
    Claim(
        "TH-T3.1-escape-x5",
        "TH",
        "Table 3.1 (escape, GD)",
        "GD leaves the saddle in 37 of the table's units, read as 5 iterations each as the authors' script counts "
        "(positions logged every 10 iterations, the count doubled): 185 +- 10 iterations",
        ("th/saddle_t3_1",),
        "saddle/mean_escape_gd",
        "within",
        group_by=None,
        at="summary",
        tolerance=10.0,
        target=185.0,
        paper_number="37 (x 5 = 185 iterations)",
        full=(("task.starts", 1000),),
    ),
    Claim(
        "TH-T3.1-escape-raw",
        "TH",
        "Table 3.1 (escape, GD)",
        "GD leaves the saddle in 37 +- 2 iterations, the table's number read as the thesis text says (iterations)",
        ("th/saddle_t3_1",),
        "saddle/mean_escape_gd",
        "within",
        group_by=None,
        at="summary",
        tolerance=2.0,
        target=37.0,
        paper_number="37 iterations",
        full=(("task.starts", 1000),),
    ),
    Claim(
        "TH-F4.2",
        "TH",
        "Figure 4.2",
        "Algorithm 2 fastest: fewest iterations to J - J* < 0.1 (median over instances) of the three methods",
        ("th/regression_f4_2",),
        "iterations_to_tolerance/{}",
        "better",
        ("Algorithm 2",),
        ("BB with absolute values", "GD with Armijo"),
        group_by=None,
        at="summary",
        paper_number="Algorithm 2 fastest",
        full=(("task.iterations", 250),),
    ),
    Claim(
        "TH-F4.3-fails",
        "TH",
        "Figure 4.3",
        "Stochastic-GV fails: its final J (median over instances) above every other method's",
        ("th/regression_f4_3",),
        "final_J/{}",
        "better",
        ("Stochastic-GV",),
        ("SGD", "Exact-GV", "Expected-GV", "Step-Tuned SGD"),
        group_by=None,
        at="summary",
        better="higher",  # "better" here reads "worse": A's J above each of B's
        paper_number="Stochastic-GV fails",
        full=(("task.epochs", 250),),
    ),
    *[
        Claim(
            f"TH-F4.3-{name.split()[0].lower()}",
            "TH",
            "Figure 4.3",
            f"{name} drops fast: its final J (median over instances) below plain SGD's",
            ("th/regression_f4_3",),
            "final_J/{}",
            "better",
            (name,),
            ("SGD",),
            group_by=None,
            at="summary",
            paper_number="drops fast",
            full=(("task.epochs", 250),),
        )
        for name in ("Exact-GV", "Expected-GV", "Step-Tuned SGD")
    ],
    _th_f44("a", 500, ("StepTunedSGD",), "Step-Tuned SGD best training on CIFAR-10, ResNet-20"),
    _th_f44("b", 500, ("StepTunedSGD",), "Step-Tuned SGD best training on CIFAR-100, ResNet-20"),
    _th_f44("d", 500, ("Adam", "RMSprop"), "Adam or RMSprop best training on the MNIST auto-encoder"),
    Claim(
        "TH-F4.6",
        "TH",
        "Figure 4.6 (e, f)",
        "BN helps Step-Tuned SGD: its mean final train loss on LeNet with BN (f) below without (e)",
        ("th/f4_6e", "th/f4_6f"),
        "train/loss",
        "better",
        ("th/f4_6f",),
        ("th/f4_6e",),
        group_by="experiment",
        filters=(("optimizer", "StepTunedSGD"), ("task.reuse_batch", (None, 1))),
        stat="mean",
        full=(("trainer.epochs", 300),),
        seeds=3,
        drop_short=True,
    ),
]


def _select(cfg, dotted: str):
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _value(run: pd.Series, key: str):
    """A runs column, or else a dotted key of the run's resolved config."""
    if key in run.index and "." not in key:
        v = run[key]
        return None if isinstance(v, float) and math.isnan(v) else v
    return _select(run.get("config") or {}, key)


def _matches(run: pd.Series, key: str, want) -> bool:
    v = _value(run, key)
    allowed = want if isinstance(want, tuple) else (want,)
    return any(v == w or (v is not None and w is not None and _num_eq(v, w)) for w in allowed)


def _num_eq(v, w) -> bool:
    try:
        return float(v) == float(w)
    except (TypeError, ValueError):
        return False


def _is_subset(run: pd.Series) -> str:
    notes = []
    for key in ("data", "source"):
        if _value(run, key) == "mnist5k":
            notes.append(f"task.{key}=mnist5k")
    cap = _value(run, "max_train_samples")
    if cap is not None:
        notes.append(f"task.max_train_samples={int(cap)}")
    return ", ".join(notes)


def _budget(run: pd.Series, key: str, full: int) -> int:
    """The profile's version of a paper count: floor(full * count_scale), at least 1."""
    scale = _select(run.get("config") or {}, "profile.count_scale") or 1.0
    return max(1, math.floor(full * scale))


def _run_value(claim: Claim, run: pd.Series, curves: dict, group: str | None) -> float | None:
    """One run's number for ``claim`` (for ``group`` when the groups live inside the run's summary)."""
    if claim.at == "summary":
        summary = read_summary(Path(run.run_dir)) or {}
        key = claim.metric.format(group) if group is not None else claim.metric
        v = (summary.get("final") or {}).get(key)
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None
    rows = curves.get(run.run_dir)
    if rows is None or claim.metric not in rows:
        return None
    rows = rows[rows.epoch >= 0].dropna(subset=[claim.metric])
    if rows.empty:
        return None
    values = rows.sort_values("epoch")[claim.metric]
    return float(values.iloc[-1] if claim.at == "final" else values.mean())


def _pool(values: list[float], stat: str) -> float:
    s = pd.Series(values, dtype=float)
    return float(s.median() if stat == "median" else s.mean())


def _fmt(v: float, metric: str) -> str:
    if metric.endswith("acc"):
        return f"{100 * v:.2f} %"
    if "share" in metric or "iterations" in metric:
        return f"{v:.4g}"
    return f"{v:.3g}"


def _holds(claim: Claim, values: dict[str, float]) -> tuple[bool, str]:
    """Whether the comparison holds on the pooled ``values`` (group -> number), and a sentence of ours."""
    m = claim.metric
    if claim.comparison in ("within", "exceeds"):
        a = min(values[g] for g in claim.a) if claim.a else values[""]
        ok = abs(a - claim.target) <= claim.tolerance if claim.comparison == "within" else a > claim.target
        rel = f"target {_fmt(claim.target, m)} +- {_fmt(claim.tolerance, m)}" if claim.comparison == "within" else (
            f"threshold {_fmt(claim.target, m)}"
        )  # fmt: skip
        return ok, f"{_fmt(a, m)} ({rel})"
    pick = min if claim.better == "lower" else max
    best = pick(claim.a, key=lambda g: values[g])
    a = values[best]
    parts, ok = [], True
    for g in claim.b:
        b = values[g]
        ratio = a / b if b else math.inf
        if claim.comparison == "close":
            ok &= 1 / (1 + claim.tolerance) <= ratio <= 1 + claim.tolerance
        elif claim.better == "lower":
            ok &= a < claim.factor * b
        else:
            ok &= a > claim.factor * b
        parts.append(f"{g} {_fmt(b, m)} (ratio {ratio:.3g})")
    return bool(ok), f"{best} {_fmt(a, m)} vs " + ", ".join(parts)


def _scale(claim: Claim, used: pd.DataFrame, per_group: dict[str, int], missing_per: list) -> str:
    """``paper``, or what falls short of it (profiles, counts below the paper's, seeds, subsets)."""
    profiles = sorted({str(p) for p in used.profile.fillna("?")})
    short = []
    for key, full in claim.full:
        values = sorted({v for v in (_value(r, key) for _, r in used.iterrows()) if v is not None})
        if values and values != [full]:
            shown = f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}"
            short.append(f"{shown} of {full} {key.rsplit('.', 1)[-1].replace('n_', '')}")
    fewest = min(per_group.values()) if per_group else 0
    if fewest < claim.seeds:
        short.append(f"{fewest} of {claim.seeds} {'seeds' if claim.group_by else 'runs'}")
    if missing_per:
        short.append(f"{claim.per} {', '.join(map(str, missing_per))} not run")
    subsets = sorted({s for s in (_is_subset(r) for _, r in used.iterrows()) if s})
    if subsets:
        short.append("subset: " + "; ".join(subsets))
    if profiles == ["paper"] and not short:
        return "paper"
    return f"{'/'.join(profiles)}: " + (", ".join(short) if short else "profile below paper")


def _left_out(reasons: Counter) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))


def _by_run(metrics: pd.DataFrame) -> dict:
    if metrics.empty or "run_dir" not in metrics:
        return {}
    return {d: m for d, m in metrics.groupby("run_dir", sort=False)}


def evaluate_one(claim: Claim, runs: pd.DataFrame, metrics: pd.DataFrame, curves: dict | None = None) -> dict:
    """The scoreboard row of one claim (``curves``: ``metrics`` split by run_dir, computed when not given)."""
    curves = _by_run(metrics) if curves is None else curves
    row = {
        "claim id": claim.id,
        "paper": claim.paper,
        "where": claim.where,
        "claim": claim.claim,
        "paper's number": claim.paper_number,
        "ours": "",
        "runs": 0,
        "left out": "",
        "scale": "",
        "verdict": "not run",
        "values": "{}",
    }
    if runs.empty or "experiment" not in runs:
        return row
    sel = runs[runs.experiment.isin(claim.experiments)]
    keep = [all(_matches(r, k, v) for k, v in claim.filters) for _, r in sel.iterrows()]
    sel = sel[pd.Series(keep, index=sel.index, dtype=bool)]
    inside = claim.group_by is None
    names = tuple(claim.a) + tuple(claim.b)
    if not inside and names:
        sel = sel[sel[claim.group_by].isin(names)]
    reasons: Counter = Counter()
    usable = []
    for _, r in sel.iterrows():
        if r.status != "completed":
            reasons[str(r.status)] += 1
            continue
        if claim.drop_short and claim.full:
            key, full = claim.full[0]
            v = _value(r, key)
            if v is not None and v < 0.5 * _budget(r, key, full):
                reasons["grid-stage (short budget)"] += 1
                continue
        usable.append(r)
    usable = _one_series(usable, reasons)
    # per value of ``per`` (or one bucket), per group: the runs' numbers
    buckets: dict = {}
    used_dirs = set()
    for r in usable:
        bucket = _value(r, claim.per) if claim.per else None
        if claim.per and claim.per_values and not any(_num_eq(bucket, p) for p in claim.per_values):
            continue
        groups = names if inside and names else ((r[claim.group_by],) if not inside else ("",))
        got = False
        for g in groups:
            v = _run_value(claim, r, curves, g if inside and names else None)
            if v is None:
                continue
            buckets.setdefault(bucket, {}).setdefault(g if names else "", []).append(v)
            got = True
        if got:
            used_dirs.add(r.run_dir)
        else:
            reasons[f"without {claim.metric}"] += 1
    row["left out"] = _left_out(reasons)
    need = names if names else ("",)
    complete = {k: g for k, g in buckets.items() if all(n in g for n in need)}
    if not complete:
        return row
    used = pd.DataFrame([r for r in usable if r.run_dir in used_dirs])
    per_group: dict[str, int] = {}  # the fewest runs any group had in any bucket
    oks, texts, numbers = [], [], {}
    for bucket in sorted(complete, key=lambda k: (k is None, k)):
        groups = complete[bucket]
        for g, vs in groups.items():
            per_group[g] = min(per_group.get(g, len(vs)), len(vs))
        pooled = {g: _pool(vs, claim.stat) for g, vs in groups.items()}
        prefix = f"{claim.per}={bucket:g}/" if claim.per else ""
        numbers.update({prefix + g: v for g, v in pooled.items()})
        ok, text = _holds(claim, pooled)
        oks.append(ok)
        texts.append((f"{claim.per} {bucket:g}: " if claim.per else "") + text)
    missing = [p for p in claim.per_values if not any(_num_eq(k, p) for k in complete)] if claim.per else []
    holds = all(oks)
    scale = _scale(claim, used, per_group, missing)
    stat = {"median": "median", "mean": "mean"}[claim.stat]
    row["ours"] = (f"{stat}: " if claim.at != "summary" or len(used) > 1 else "") + "; ".join(texts)
    if claim.per:
        row["ours"] += f" (holds at {sum(oks)} of {len(oks)})"
    row["runs"] = len(used)
    row["values"] = json.dumps(numbers)
    row["scale"] = scale
    at_scale = scale == "paper"
    if holds:
        row["verdict"] = "reproduced" if at_scale else "partial: subset or reduced scale"
    else:
        row["verdict"] = "not reproduced" if at_scale else "not reproduced (reduced scale)"
    return row


def _one_series(usable: list, reasons: Counter) -> list:
    """Runs whose configs differ in more than the seed are never pooled (``series.series_labels``): a claim uses the
    series with the most runs, and the others are left out, named."""
    if len(usable) < 2:
        return usable
    labels = series_labels(pd.DataFrame(usable).reset_index(drop=True))
    if labels.nunique() == 1:
        return usable
    counts = labels.value_counts()
    chosen = sorted(counts.index, key=lambda label: (-counts[label], label))[0]
    for label, n in counts.items():
        if label != chosen:
            reasons[f"other config ({label})"] += int(n)
    return [r for r, label in zip(usable, labels) if label == chosen]


def evaluate(claims: list[Claim], runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: its id, paper, where, words, the paper's number, ours, runs used, left out, scale, verdict,
    and ``values`` (JSON: the pooled numbers the comparison used)."""
    curves = _by_run(metrics)
    return pd.DataFrame([evaluate_one(c, runs, metrics, curves) for c in claims], columns=CSV_COLUMNS)


def markdown_table(table: pd.DataFrame) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    table = table[[c for c in table.columns if c != "values"]]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def summary_line(table: pd.DataFrame) -> str:
    counts = table.verdict.value_counts()
    return f"{len(table)} claims: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts) + "."


def write_claims(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> pd.DataFrame:
    """``claims.csv`` and ``claims.md`` (every claim) in ``out``."""
    table = evaluate(CLAIMS, runs, metrics)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text("# Claims\n\n" + summary_line(table) + "\n\n" + markdown_table(table) + "\n")
    return table


def claims_section(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[str]:
    """report.md's scoreboard section (and claims.csv, claims.md beside it)."""
    table = write_claims(runs, metrics, out)
    return [
        "## Claims scoreboard",
        "",
        f"Every claim of the four papers against these runs (`claims.csv`, `claims.md`); {summary_line(table)} "
        "Verdict rule: `optrepro.report.claims`.",
        "",
        markdown_table(table),
        "",
    ]


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with what lies between the claims markers replaced by ``table`` (the markers kept)."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one {START} ... {END} block")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", text)


def _load_or_empty(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    from optrepro.report.load import load

    existing = [p for p in paths if Path(p).exists()]
    if not existing:
        return pd.DataFrame(), pd.DataFrame()
    try:
        return load(existing)
    except FileNotFoundError:  # no runs under them
        return pd.DataFrame(), pd.DataFrame()


DOC_HEAD = """# Claims scoreboard

Generated by `make docs` (`python -m optrepro.report.claims RUNS... --docs docs/claims.md --readme README.md`) from
the run folders {paths}; do not edit by hand. Each claim is a record in `src/optrepro/report/claims.py`: the runs
it reads, the metric, the comparison, the tolerance and the paper's number. `runs` counts the completed runs used;
`left out` the runs that matched but were not used, and why (diverged, failed, a grid-search stage). `scale` is
`paper` when every run used is at `profile=paper` with the paper's epochs (or iterations, starts, samples) and
seed count, and otherwise says what fell short.

Verdicts: `reproduced` (holds at paper scale); `not reproduced` (fails at paper scale); `partial: subset or
reduced scale` (holds, but on a subset or below paper scale); `not reproduced (reduced scale)` (fails on a subset
or below paper scale: evidence at that scale, not a verdict on the paper's setting); `not run` (no completed runs
for the claim; never `reproduced`). Per-figure settings and numbers from runs made outside this folder are in
`docs/ht.md`, `docs/gc.md`, `docs/hta.md` and `docs/th.md`.

{summary}

"""


def write_docs(paths: list[Path], docs: Path, readme: Path | None) -> pd.DataFrame:
    """docs/claims.md from the runs under ``paths`` (every claim ``not run`` when there are none), and the README's
    table between the claims markers."""
    runs, metrics = _load_or_empty(paths)
    table = evaluate(CLAIMS, runs, metrics)
    md = markdown_table(table)
    head = DOC_HEAD.format(paths=", ".join(f"`{p}`" for p in paths), summary=summary_line(table))
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(head + md + "\n")
    if readme is not None:
        readme.write_text(replace_between_markers(readme.read_text(), md))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.report.claims", description=write_docs.__doc__)
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("outputs")], help="run folders (default outputs)")
    parser.add_argument("--docs", type=Path, default=Path("docs/claims.md"))
    parser.add_argument("--readme", type=Path, help="README whose claims table (between the markers) is replaced")
    args = parser.parse_args(argv)
    table = write_docs(args.paths or [Path("outputs")], args.docs, args.readme)
    print(
        f"wrote {args.docs}" + (f" and the table in {args.readme}" if args.readme else "") + f": {summary_line(table)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
