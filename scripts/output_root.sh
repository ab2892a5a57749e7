# Sourced by the paper scripts: the folder every run and report of this invocation writes under. Runs at another
# profile than the paper's keep to their own sub-folder (`outputs/profile=quick/...`), so a later report never
# mixes them with paper-scale runs (the same rule as train.yaml's default run and sweep folders).
# Values passed to Hydra as hydra.sweep.dir are quoted ('$out/...'): the folder name holds an "=".
out=${OPTREPRO_OUT:-outputs}
for arg in "$@"; do
  if [[ $arg == profile=* && $arg != profile=paper ]]; then out="$out/$arg"; fi
done
