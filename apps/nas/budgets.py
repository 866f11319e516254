"""The training budgets of NAS candidates, as plain values (no torch: the command line
reads them for its defaults and help)."""

#: Training on a proxy: SGD with cosine annealing and DSA on every minibatch (the
#: protocol's augmentation), few epochs in minibatches of 25: on a 100-image proxy that
#: is 200 steps instead of 50 for the same FLOPs, and slow starters (deep networks
#: without normalisation) get going (docs/nas.md says how the budget was chosen).
PROXY_BUDGET = {"epochs": 50, "batch": 25, "lr": 0.01, "schedule": "cosine", "augmentation": None}
#: Training on the full data: the handout's upper-bound recipe (cosine, no augmentation)
#: for 3 epochs: long enough to separate good from poor architectures, short enough that
#: accuracies do not all bunch at 99% and a study of 20 architectures fits a CPU.
FULL_BUDGET = {"epochs": 3, "batch": 256, "lr": 0.01, "schedule": "cosine", "augmentation": "none"}
