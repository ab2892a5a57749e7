#!/usr/bin/env bash
# TH toy experiments (Figures 2.1, 3.2, 4.2, 4.3, Table 3.1) at the thesis's settings, then one report.
# Extra arguments go to every optrepro-train call (e.g. profile=quick).
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
for preset in rosenbrock_f2_1 spirals_f3_2 saddle_t3_1 regression_f4_2 regression_f4_3; do
  optrepro-train experiment=th/$preset paths.run_dir="$out/th/$preset" "$@"
done
optrepro-report "$out/th" --out "$out/reports/th-toys"
