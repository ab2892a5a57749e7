#!/usr/bin/env bash
# TH deep-learning benchmarks (thesis chapters 2 and 4), the grid search run as the thesis ran it, in stages that
# read each other's results from disk (optrepro.grid: no value copied by hand).
#
#   th_deep.sh grid   a|b|c|d|e|f [ARGS]   stage one: every optimizer's lr grid (+ nu, Adam's beta1) for grid_epochs
#   th_deep.sh fig4.4 a|b|c|d     [ARGS]   stage two: each optimizer at its chosen values, 3 seeds, full budget
#   th_deep.sh fig4.5 a|b|c|d     [ARGS]   as fig4.4 with every method using each minibatch twice (task.reuse_batch=2)
#   th_deep.sh fig4.6 e|f         [ARGS]   as fig4.4 for LeNet without / with batch norm
#   th_deep.sh fig2   mnist|cifar10|cifar100 [ARGS]   chapter 2: grid (15 epochs), Figures 2.2, 2.3, 2.4
#
# Extra arguments go to every optrepro-train call (e.g. trainer=gpu, profile=quick). Completed runs are skipped, so
# an interrupted stage is resumed by running it again.
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
what=${1:?usage: th_deep.sh grid|fig4.4|fig4.5|fig4.6|fig2 PROBLEM [ARGS]}
problem=${2:?give a problem: a-f (chapter 4) or mnist, cifar10, cifar100 (chapter 2)}
shift 2

case $problem in
  a | b | c | d) preset=f4_4$problem ;;
  e | f) preset=f4_6$problem ;;
  mnist | cifar10 | cifar100) preset=f2_$problem ;;
  *) echo "th_deep.sh: unknown problem '$problem' (a-f, mnist, cifar10, cifar100)" >&2; exit 2 ;;
esac
case $preset in
  f2_*) optimizers=(inna sgd adagrad adam) ;;                  # TH section 2.6.2
  *) optimizers=(sgd step_tuned_sgd inna rmsprop adam) ;;        # TH section 4.5.1
esac
grid_dir="$out/multirun/th/grid/$preset"

stage_one() {
  for opt in "${optimizers[@]}"; do
    optrepro-train -m "experiment=th/$preset" "sweep=th/grid_$opt" hydra.sweep.dir="'$grid_dir'" "$@"
  done
}

chosen() {  # the overrides stage one chose for optimizer $1, as one line
  python -m optrepro.grid "$grid_dir" --sweep "th/grid_$1" --table "$grid_dir/choice_$1.csv"
}

stage_two() {  # fig extra-overrides... -- ARGS
  local fig=$1 dir="$out/multirun/th/$1/$preset" line reuse
  shift
  for opt in "${optimizers[@]}"; do
    line=$(chosen "$opt")
    read -ra picked <<<"$line"
    reuse=()
    # Step-Tuned SGD already uses every minibatch for two steps (Algorithm 3); Figure 4.5 gives the others the same.
    if [[ $fig == fig4.5 && $opt != step_tuned_sgd ]]; then reuse=(task.reuse_batch=2); fi
    optrepro-train -m "experiment=th/$preset" sweep=th/seeds3 "${picked[@]}" "${reuse[@]}" \
      hydra.sweep.dir="'$dir'" "$@"
  done
  optrepro-report "$dir" --out "$out/reports/th-$fig-$preset"
}

fig2() {
  stage_one "$@"
  local line ab
  line=$(chosen inna)
  read -ra inna <<<"$line"
  # Figure 2.2: INNA's four (alpha, beta) pairs at the gamma_0 chosen for (0.5, 0.1) (not stated in the paper)
  for pair in "0.1 0.1" "0.5 0.1" "0.5 0.5" "0.5 1.0"; do
    read -r a b <<<"$pair"
    optrepro-train -m "experiment=th/$preset" sweep=th/seeds5 "${inna[@]}" optimizer.alpha="$a" optimizer.beta="$b" \
      hydra.sweep.dir="'$out/multirun/th/f2_2/$preset'" "$@"
  done
  # Figure 2.3: INNA with the (alpha, beta) of smallest mean train loss in Figure 2.2, against SGD, Adagrad, Adam
  line=$(python -m optrepro.grid "$out/multirun/th/f2_2/$preset" --keys optimizer.alpha optimizer.beta)
  read -ra ab <<<"$line"
  for opt in "${optimizers[@]}"; do
    line=$(chosen "$opt")
    read -ra picked <<<"$line"
    if [[ $opt == inna ]]; then picked+=("${ab[@]}"); fi
    optrepro-train -m "experiment=th/$preset" sweep=th/seeds5 "${picked[@]}" \
      hydra.sweep.dir="'$out/multirun/th/f2_3/$preset'" "$@"
  done
  # Figure 2.4: that INNA with gamma_0 (k+1)^-q, q in {1/2, 1/4, 1/8, 1/16}
  optrepro-train -m "experiment=th/$preset" sweep=th/f2_4 "${inna[@]}" "${ab[@]}" \
    hydra.sweep.dir="'$out/multirun/th/f2_4/$preset'" "$@"
  # one report per figure (their INNA runs share settings); Figure 2.4's bottom row adds Figure 2.3's Adam runs
  optrepro-report "$out/multirun/th/f2_2/$preset" --out "$out/reports/th-fig2.2-$preset"
  optrepro-report "$out/multirun/th/f2_3/$preset" --out "$out/reports/th-fig2.3-$preset"
  optrepro-report "$out/multirun/th/f2_4/$preset" "$out/multirun/th/f2_3/$preset"/*optimizer=adam* \
    --out "$out/reports/th-fig2.4-$preset"
}

case $what in
  grid) stage_one "$@" ;;
  fig4.4 | fig4.5 | fig4.6) stage_two "$what" "$@" ;;
  fig2) fig2 "$@" ;;
  *) echo "th_deep.sh: unknown stage '$what' (grid, fig4.4, fig4.5, fig4.6, fig2)" >&2; exit 2 ;;
esac
