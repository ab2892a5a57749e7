#!/usr/bin/env bash
# TH toy experiments (Figure 2.1, Figure 3.2, Table 3.1) at the thesis's settings, then one report.
# Extra arguments go to every optrepro-train call (e.g. profile=quick).
set -euo pipefail
out=${OPTREPRO_OUT:-outputs}
for preset in rosenbrock_f2_1 spirals_f3_2 saddle_t3_1; do
  optrepro-train experiment=th/$preset paths.run_dir="$out/th/$preset" "$@"
done
optrepro-report "$out/th" --out "$out/reports/th-toys"
