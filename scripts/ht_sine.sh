#!/usr/bin/env bash
# HT sine figures at paper scale. Figure 2a's sweep (3 methods x 7 omegas, 100 seeds each) holds the points of
# Figures 1a/1b (omega 74, 137) and 8a/8b (95, 116); Figure 2b (cosine annealing) has its own. Each sweep trains as
# packs under hydra/launcher=packed (docs/architecture.md "Packed sweeps"): every job whose config differs only in
# the method, omega or seed joins one ensemble in one process, the source pre-training shared by warm start and the
# homotopy of each seed runs once, and each job keeps its own folder. LAUNCHER=basic runs one job after another.
# Then one report with every figure and Figure 5's pictures. Extra arguments go to every optrepro-train call, e.g.
# `make ht-sine ARGS="trainer=gpu"` or `ARGS="profile=quick"`; `ARGS="hydra.launcher.max_members=600"` caps a pack.
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
launcher="hydra/launcher=${LAUNCHER:-packed}"
optrepro-train -m experiment=ht/sine_f1 sweep=ht/f2a "$launcher" hydra.sweep.dir="'$out/multirun/ht/sine_f1'" "$@"
optrepro-train -m experiment=ht/sine_f2b sweep=ht/f2b "$launcher" hydra.sweep.dir="'$out/multirun/ht/sine_f2b'" "$@"
optrepro-report "$out/multirun/ht/sine_f1" "$out/multirun/ht/sine_f2b" --figure ht-f5 --out "$out/reports/ht-sine"
