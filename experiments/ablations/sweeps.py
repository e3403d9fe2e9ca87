"""Ready-made sweeps: one per paper figure or table row this repository can run.

A sweep is a base config file, a grid of axes (short names from ``AXES`` or dotted config keys) and
seeds; ``sweep.py`` runs every point of the grid for every seed, ``summarize.py`` turns the results into
tables and the papers' plots. ``offline_digits`` runs here (2-core CPU, no data to download) in about
5 minutes; the others need their datasets under ``--config.data_dir`` and an accelerator.
"""

from __future__ import annotations

# Short axis names → config keys (the ablation axes of the ProSampler and TBS papers).
AXES = {
    "sampler": "sampler.name",
    "M": "sampler.num_candidates",
    "alpha": "sampler.restart_prob",
    "K": "sampler.num_neighbors",
    "B": "batch_size",
    "t": "sampler.refresh_steps",
    "loss": "loss.name",
    "quantile": "sampler.quantile",
    "max_neighbors": "sampler.max_neighbors",
    "margin": "loss.false_negative_margin",
    "seed": "seed",
}

SWEEPS = {
    # Small and offline: digits, 12 epochs, samplers, M and α (K = 50), 3 seeds (30 runs).
    "offline_digits": {
        "config": "experiments/configs/simclr_digits.py",
        "overrides": {"num_epochs": 12, "eval.linear_epochs": 30, "eval_every_epochs": 0},
        "grid": [{"sampler": ["uniform", "knn", "tail", "partition", "cluster"]},
                 {"sampler": ["proximity"], "M": [50, 200, 1000], "alpha": [0.2]},
                 {"sampler": ["proximity"], "M": [200], "alpha": [0.05, 0.5]}],
        "reference": {"M": 200, "alpha": 0.2},  # ProSampler's bar in samplers.png: the grid's centre
        "seeds": [0, 1, 2],
        "metric": "knn_accuracy",
        "paper": "ProSampler Fig. 4-5 shape (M, α), on digits",
    },
    # ProSampler (KDD'23) Fig. 4: accuracy, batch hardness and false negatives vs M, on CIFAR-10.
    "prosampler_cifar10_M": {
        "config": "experiments/configs/simclr_cifar10.py",
        "grid": [{"sampler": ["uniform"]},
                 {"sampler": ["proximity"], "M": [100, 500, 1000, 5000, 49999]}],
        "seeds": [0, 1, 2],
        "metric": "linear_accuracy",
        "paper": "ProSampler Fig. 4 (M); M = N − 1 is the kNN graph",
    },
    # ProSampler Fig. 5: restart probability α.
    "prosampler_cifar10_alpha": {
        "config": "experiments/configs/simclr_cifar10.py",
        "grid": [{"sampler": ["proximity"], "alpha": [0.05, 0.1, 0.2, 0.3, 0.5, 0.8]}],
        "seeds": [0, 1, 2],
        "metric": "linear_accuracy",
        "paper": "ProSampler Fig. 5 (α)",
    },
    # ProSampler Table 2 (images): every sampler on STL-10 with the reference setup.
    "prosampler_stl10_samplers": {
        "config": "experiments/configs/simclr_stl10.py",
        "grid": [{"sampler": ["uniform", "knn", "proximity", "tail"]}],
        "seeds": [0, 1, 2],
        "metric": "linear_accuracy",
        "paper": "ProSampler Table 2, STL-10 row",
    },
    # ProSampler Table 2 (images), the loss variants: SimCLR, DCL, HCL with and without ProSampler.
    "prosampler_cifar100_losses": {
        "config": "experiments/configs/simclr_cifar100.py",
        "grid": [{"sampler": ["uniform", "proximity"], "loss": ["nt_xent", "dcl", "hcl"]}],
        "seeds": [0, 1, 2],
        "metric": "linear_accuracy",
        "paper": "ProSampler Table 2, CIFAR-100 rows (SimCLR/DCL/HCL)",
    },
    # ProSampler Table 3 and TBS Table 1 (text): unsupervised SimCSE-BERT on wiki1m, STS average.
    "simcse_unsup_samplers": {
        "config": "experiments/configs/simcse_unsup_bert.py",
        "grid": [{"sampler": ["uniform", "proximity", "tail", "partition", "cluster"]}],
        "seeds": [0, 1, 2],
        "metric": "average",
        "paper": "ProSampler Table 3 / TBS Table 1, unsupervised SimCSE-BERT-base",
    },
    # ProSampler Table 4 (graphs): GraphCL on the TU datasets, 5 seeds as the paper.
    "graphcl_tu_samplers": {
        "config": "experiments/configs/graphcl_nci1.py",
        "grid": [{"sampler": ["uniform", "proximity", "tail", "partition", "cluster"]}],
        "seeds": [0, 1, 2, 3, 4],
        "metric": "svm_acc",
        "paper": "ProSampler Table 4, NCI1 row (swap --config for the other TU rows)",
    },
    # ProSampler's own axes on NCI1, a follow-up of graphcl_tu_samplers (pair it with that sweep's runs via
    # summarize.follow_up): the restart probability α at both ends, and M = N (the kNN graph, hardest).
    "graphcl_nci1_prosampler": {
        "config": "experiments/configs/graphcl_nci1.py",
        "grid": [{"sampler": ["proximity"], "alpha": [0.05, 0.5]},
                 {"sampler": ["proximity"], "M": [None]}],
        "seeds": [0, 1, 2, 3, 4],
        "metric": "svm_acc",
        "paper": "ProSampler Fig. 4-5 axes (α, M = N) on NCI1",
    },
    # ProSampler's t (refresh interval) ablation.
    "prosampler_stl10_refresh": {
        "config": "experiments/configs/simclr_stl10.py",
        "grid": [{"sampler": ["proximity"], "t": [25, 50, 100, 200, 400]}],
        "seeds": [0, 1, 2],
        "metric": "linear_accuracy",
        "paper": "ProSampler Fig. 6 (t)",
    },
}
