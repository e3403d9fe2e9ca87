"""Keys every GraphCL config shares: the settings of GraphCL's unsupervised TU scripts (Shen-Lab/GraphCL
unsupervised_TU: gsimclr.py, arguments.py, go.sh) — GIN with 3 layers of 32 units, sum readout of every
layer, a Linear-ReLU-Linear head, Adam at 0.01, batch 128, 20 epochs, temperature 0.2, the graph and one
of four augmentations per graph ("random4"), SVM accuracy every 10 epochs.

Two recipes, chosen by the config string (``--config=experiments/configs/graphcl_nci1.py:paper``):

- ``released_code`` (the default, used by every paper-row config): what the released code trained, where
  the published GraphCL and ProSampler numbers come from. Augmentations perturb 10% (aug.py's n/10), the
  subgraph view is the start node and ⌊0.2·n⌋ of its direct neighbours, every node but the last gets a
  self-loop (so do the evaluated graphs), augmented views lose the nodes no edge touches and then their
  self-loops (gsimclr.py), and graphs without node labels get a constant feature.
- ``paper``: the augmentations as the GraphCL paper describes them: 20%, a connected subgraph of 80% of
  the nodes, no self-loops, one-hot degree for graphs without node labels.

The released code's baseline also trained on fixed batches (one shuffle, then the same batches every
epoch): that is the ``fixed`` sampler, a row of the comparisons beside ``uniform``.

Not meant to be launched by itself; see graphcl_<dataset>.py (one per TU dataset of the papers' tables).
"""

import ml_collections

from experiments.configs import default

RECIPES = ("released_code", "paper")


def get_config(recipe: str = "released_code"):
  if recipe not in RECIPES:
    raise ValueError(f"GraphCL config recipe {recipe!r}; allowed: {', '.join(RECIPES)} (the text after "
                     "':' in --config=<file>.py:<recipe>).")
  config = default.get_config()
  config.task = "graphcl"
  config.dataset = "MUTAG"         # a TU dataset: files in data_dir/<NAME>/ (MUTAG offline: data_dir "")
  config.num_epochs = 20
  config.batch_size = 128
  config.eval_batch_size = 128
  config.graph = ml_collections.ConfigDict()
  config.graph.missing_features = "degree"  # graphs without node labels: one-hot degree | constant
  config.graph.self_loops = "none"  # none | all_but_last (the released loader's self-loops)
  config.graph.max_degree = 64     # degree features: min(degree, max_degree), one-hot
  config.graph.use_node_attributes = False  # GraphCL uses node labels only
  config.model.hidden = 32         # GIN width (GraphCL's --hidden-dim)
  config.model.num_layers = 3      # GIN layers (go.sh: --num-gc-layers 3); readout 3·32 = 96 wide
  config.loss.name = "graphcl"     # graphcl | nt_xent | dcl | hcl
  config.loss.temperature = 0.2
  config.augment.view1 = "none"    # GraphCL contrasts the graph itself ...
  config.augment.view2 = "random4"  # ... with one of node_drop, edge_perturb, subgraph, attr_mask
  config.augment.ratio = 0.2       # share of nodes / edges each augmentation perturbs
  config.augment.subgraph = "grow"  # grow (a connected 1 - ratio) | start_neighbours (the released one)
  config.augment.drop_unlinked = False  # augmented views lose untouched nodes, then self-loops (released)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 0.0
  # ProSampler as THUDM/BatchSampler's released code runs it. That repository holds its vision code only
  # (main.py, train.sh); the paper gives no per-dataset graph settings, so every TU row uses those:
  config.sampler.num_candidates = 1000  # M: main.py --M 1000
  config.sampler.num_neighbors = 100    # K: train.sh --edge_nums 100
  config.sampler.restart_prob = 0.2     # α: train.sh --restart_p 0.2 ...
  config.sampler.restart_decay = 0.02   # ... minus 0.1 per 5 epochs (main.py), ...
  config.sampler.min_restart_prob = 0.05  # ... never below 0.05
  config.sampler.refresh_steps = 100    # t: train.sh --update_batchs 100 (NCI1: every ~3 epochs)
  config.sampler.warmup_epochs = 1      # train.sh --random_epochs 1: shuffled batches first
  config.eval.svm_seeds = 5        # the final accuracy: mean ± std over this many 10-fold splits
  config.eval.svm_folds = 10
  config.eval.svm_jobs = -1        # processes for the SVM's grid search: -1 all cores (same result)
  config.eval_every_epochs = 10    # GraphCL's log_interval: SVM accuracy (one split) every 10 epochs
  config.log_every_steps = 10
  config.checkpoint_steps = 1000
  if recipe == "released_code":
    config.augment.ratio = 0.1               # aug.py: int(n / 10) nodes, int(e / 10) edge entries
    config.augment.subgraph = "start_neighbours"
    config.augment.drop_unlinked = True      # gsimclr.py rebuilds each augmented batch this way
    config.graph.self_loops = "all_but_last"
    config.graph.missing_features = "constant"  # aug.py: ones for every set outside its node-label list
  return config
