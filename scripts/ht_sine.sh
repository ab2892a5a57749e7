#!/usr/bin/env bash
# HT sine figures at paper scale: Figures 1a/1b, 8a/8b, 2a share one sweep directory (points already run are
# skipped), Figure 2b has its own; then one report with every figure and Figure 5's pictures.
# Extra arguments go to every optrepro-train call, e.g. `make ht-sine ARGS="trainer=gpu"` or `ARGS="profile=quick"`.
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
optrepro-train -m experiment=ht/sine_f1 sweep=ht/f1 hydra.sweep.dir="$out/multirun/ht/sine_f1" "$@"
optrepro-train -m experiment=ht/sine_f1 sweep=ht/f8 hydra.sweep.dir="$out/multirun/ht/sine_f1" "$@"
optrepro-train -m experiment=ht/sine_f1 sweep=ht/f2a hydra.sweep.dir="$out/multirun/ht/sine_f1" "$@"
optrepro-train -m experiment=ht/sine_f2b sweep=ht/f2b hydra.sweep.dir="$out/multirun/ht/sine_f2b" "$@"
optrepro-report "$out/multirun/ht/sine_f1" "$out/multirun/ht/sine_f2b" --figure ht-f5 --out "$out/reports/ht-sine"
