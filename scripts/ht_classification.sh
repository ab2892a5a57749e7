#!/usr/bin/env bash
# HT classification figures: Figure 3a (MNIST -> FashionMNIST) and 3b (MNIST -> CIFAR-10), three methods x 10
# seeds each, then one report with both and Figure 6 (an MNIST / FashionMNIST pair mixed at lambda = 0.5).
# Needs MNIST, FashionMNIST and CIFAR-10 under $OPTREPRO_DATA (or data/, or /usr/share/datasets); add
# ARGS="task.download=true" to fetch them. Offline on the 5000-image MNIST subset instead of 3a:
#   optrepro-train -m experiment=ht/mnist5k_fmnist_f3a sweep=ht/f3
# Extra arguments go to every optrepro-train call, e.g. `make ht-classification ARGS="trainer=gpu"`.
set -euo pipefail
source "$(dirname "$0")/output_root.sh"  # sets out (a sub-folder per non-paper profile)
optrepro-train -m experiment=ht/mnist_fmnist_f3a sweep=ht/f3 hydra.sweep.dir="'$out/multirun/ht/mnist_fmnist_f3a'" "$@"
optrepro-train -m experiment=ht/mnist_cifar10_f3b sweep=ht/f3 hydra.sweep.dir="'$out/multirun/ht/mnist_cifar10_f3b'" "$@"
optrepro-report "$out/multirun/ht/mnist_fmnist_f3a" "$out/multirun/ht/mnist_cifar10_f3b" --figure ht-f6 \
  --out "$out/reports/ht-classification"
