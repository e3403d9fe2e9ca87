"""Keys every GraphCL config shares: the settings of GraphCL's unsupervised TU scripts (Shen-Lab/GraphCL
unsupervised_TU: gsimclr.py, arguments.py, go.sh) — GIN with 3 layers of 32 units, sum readout of every
layer, a Linear-ReLU-Linear head, Adam at 0.01, batch 128, 20 epochs, temperature 0.2, the graph and one
of four augmentations per graph ("random4"), SVM accuracy every 10 epochs.

Not meant to be launched by itself; see graphcl_<dataset>.py (one per TU dataset of the papers' tables).
"""

import ml_collections

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.task = "graphcl"
  config.dataset = "MUTAG"         # a TU dataset: files in data_dir/<NAME>/ (MUTAG offline: data_dir "")
  config.num_epochs = 20
  config.batch_size = 128
  config.eval_batch_size = 128
  config.graph = ml_collections.ConfigDict()
  config.graph.missing_features = "degree"  # graphs without node labels: one-hot degree | constant
  config.graph.max_degree = 64     # degree features: min(degree, max_degree), one-hot
  config.graph.use_node_attributes = False  # GraphCL uses node labels only
  config.model.hidden = 32         # GIN width (GraphCL's --hidden-dim)
  config.model.num_layers = 3      # GIN layers (go.sh: --num-gc-layers 3); readout 3·32 = 96 wide
  config.loss.name = "graphcl"     # graphcl | nt_xent | dcl | hcl
  config.loss.temperature = 0.2
  config.augment.view1 = "none"    # GraphCL contrasts the graph itself ...
  config.augment.view2 = "random4"  # ... with one of node_drop, edge_perturb, subgraph, attr_mask
  config.augment.ratio = 0.2       # share of nodes / edges each augmentation perturbs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 0.0
  config.sampler.num_neighbors = 100
  config.sampler.num_candidates = 1000
  config.sampler.refresh_steps = 0  # once per epoch
  config.sampler.warmup_epochs = 1
  config.eval.svm_seeds = 5        # the final accuracy: mean ± std over this many 10-fold splits
  config.eval.svm_folds = 10
  config.eval.svm_jobs = -1        # processes for the SVM's grid search: -1 all cores (same result)
  config.eval_every_epochs = 10    # GraphCL's log_interval: SVM accuracy (one split) every 10 epochs
  config.log_every_steps = 10
  config.checkpoint_steps = 1000
  return config
