#!/usr/bin/env bash
# HTA: Table 1 (the test function, CPU, minutes), then Tables 2-3 and Figures 2-3 (VGG on CIFAR-10: 620 epochs per
# run, 22 runs; GPUs needed), then one report. Extra arguments go to every optrepro-train call
# (e.g. `make hta-all ARGS="trainer=gpu"` or `ARGS="profile=quick"`). HTA_T1_ONLY=1 stops after Table 1.
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
optrepro-train experiment=hta/function_t1 paths.run_dir="$out/hta/function_t1" "$@"
if [[ "${HTA_T1_ONLY:-0}" != 1 ]]; then
  optrepro-train -m experiment=hta/vgg_t2 sweep=hta/t2 hydra.sweep.dir="'$out/multirun/hta/vgg_t2'" "$@"
  optrepro-train -m experiment=hta/vgg_t3 sweep=hta/t3 hydra.sweep.dir="'$out/multirun/hta/vgg_t3'" "$@"
  optrepro-train -m experiment=hta/vgg_f3 sweep=hta/f3 hydra.sweep.dir="'$out/multirun/hta/vgg_f3'" "$@"
  optrepro-report "$out/hta" "$out/multirun/hta" --out "$out/reports/hta"
else
  optrepro-report "$out/hta" --out "$out/reports/hta"
fi
