"""Defaults shared by every config; each experiment config imports this and changes a few fields.

Not meant to be launched by itself (it has no dataset-specific model or sizes); see simclr_*.py.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
  """The keys every run has; see the per-experiment configs for values that matter."""
  config = ml_collections.ConfigDict()
  config.task = "simclr"
  config.dataset = "digits"
  config.data_dir = ""            # tfds data_dir; "" means tfds' default (~/tensorflow_datasets)
  config.data_reader = "memory"   # memory | random_access (ImageNet: ArrayRecord files read by index)
  config.data = ml_collections.ConfigDict()
  config.data.loader = "auto"     # text and graph rows: auto (tf.data if TensorFlow is there) | tf | numpy
  config.seed = 0
  config.num_epochs = 100
  config.batch_size = 256         # global batch B (split over all devices)
  config.eval_batch_size = 512

  config.model = ml_collections.ConfigDict()
  config.model.encoder = "resnet18"   # small_cnn | resnet18 | resnet50
  config.model.cifar_stem = False
  config.model.width = 0              # 0: the encoder's default width
  config.model.projection_dim = 128
  config.model.projection_hidden = 0  # 0: same as the encoder's feature size
  config.model.dtype = "float32"      # compute dtype: bfloat16 on accelerators

  config.loss = ml_collections.ConfigDict()
  config.loss.name = "nt_xent"        # nt_xent | dcl | hcl
  config.loss.temperature = 0.5
  config.loss.tau_plus = 0.1          # dcl, hcl: class prior τ⁺
  config.loss.beta = 1.0              # hcl: hardness β
  # False-negative control (every loss): drop a negative c of anchor a when cos(a, c) > m · cos(a, a⁺)
  # (m = 1 − sentence-transformers' relative_margin, e.g. 0.95; None: off), and/or treat same-label
  # items as non-negatives (tasks with pre-training labels: digits, CIFAR, TU graphs).
  config.loss.false_negative_margin = placeholder(float)
  config.loss.exclude_same_label = False

  # The embedding bank the sampler reads: storage dtype (float32 | bfloat16: half the memory) and layout
  # (replicated | data: its columns split over the devices, 1/num_devices of the bytes on each).
  config.bank_dtype = "float32"
  config.bank_sharding = "replicated"
  # Each refresh logs TBS's loss gap for the window: exact while anchors × N ≤ this many similarities,
  # else on a fixed random subset of anchors (diagnostics.gap_anchors); 0: not logged.
  config.loss_gap_scores = 2**26

  config.sampler = ml_collections.ConfigDict()
  config.sampler.name = "proximity"   # uniform | proximity | knn | tail | partition | cluster | fixed
  config.sampler.num_neighbors = 100  # K
  config.sampler.num_candidates = 1000  # M
  config.sampler.restart_prob = 0.2   # α
  config.sampler.restart_decay = 0.0  # reference: 0.02 per epoch down to min_restart_prob (off here)
  config.sampler.min_restart_prob = 0.05
  config.sampler.graph_backend = "candidates"
  config.sampler.candidate_draw = "per_row"  # per_row (the paper) | shared (faster, correlated rows)
  config.sampler.quantile = placeholder(float)  # tail; None: q = 1 − min(B, 4·max_neighbors)/N
  config.sampler.max_neighbors = 64   # tail: at most this many tail edges per item (memory ∝ N, not N·B)
  config.sampler.graph = "auto"       # tail: exact | knn (k-means cells, millions of items) | auto
  config.sampler.rank_start = placeholder(int)   # partition (B3): skip the r0 nearest; None: min(30, N/100)
  config.sampler.rank_window = placeholder(int)  # partition: keep ranks r0 … r0+n−1; None: min(100, N/20)
  config.sampler.packing = "random"   # cluster: random | greedy (nearest-centroid route)
  config.sampler.refresh_steps = 0    # t; 0: once per epoch
  config.sampler.warmup_epochs = 1    # uniform epochs that fill the bank first
  # Sample the next window this many steps early, in the background; capped at refresh_steps // 8
  # (feeder.effective_lookahead) so a window never misses more than an eighth of a window of writes.
  config.sampler.lookahead_steps = 8
  # What of each bank row the sampler reads: rows | first_view (two-view tasks: only the first view, half
  # the sampler's float32 copy and reads; no loss gap then; not with tail, which reads the pair).
  config.sampler.bank_view = "rows"

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"      # adam (coupled L2) | adamw | lars | sgd
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-6  # kernels only: biases and norm scales are never decayed
  config.optimizer.momentum = 0.9     # lars, sgd
  config.optimizer.schedule = "constant"  # constant | cosine
  config.optimizer.warmup_steps = 0

  # Image augmentations (SimCLR): None keeps the dataset's default (data.augment_config_for); every
  # field of data.AugmentConfig is here, so each can be set from the command line, e.g.
  # --config.augment.crop_scale="(0.2, 1.0)" --config.augment.blur_prob=0.5
  config.augment = ml_collections.ConfigDict()
  config.augment.crop_scale = placeholder(tuple)   # (low, high) share of the image area kept
  config.augment.crop_ratio = placeholder(tuple)   # (low, high) aspect ratio of the crop
  config.augment.flip = placeholder(bool)
  config.augment.jitter_prob = placeholder(float)
  config.augment.jitter_strength = placeholder(float)  # s: brightness/contrast/saturation 0.8s, hue 0.2s
  config.augment.grayscale_prob = placeholder(float)
  config.augment.blur_prob = placeholder(float)
  config.augment.noise_std = placeholder(float)

  config.eval = ml_collections.ConfigDict()
  config.eval.knn_k = 200
  config.eval.knn_temperature = 0.5
  config.eval.linear_epochs = 100
  config.eval.linear_learning_rate = 1e-3
  config.eval_every_epochs = 1        # the task's cheap monitor (kNN for images); 0: only at the end
  config.eval_every_steps = 0         # >0: the monitor also every this many steps (SimCSE: 250). A task
                                      # with a selection_metric is finally evaluated on its best model

  config.log_every_steps = 50
  config.checkpoint_steps = 1000
  config.keep_checkpoints = 3
  config.checkpoint_async = True      # write and hash checkpoints in the background (off the step's path)
  config.stop_after_steps = 0         # >0: leave after this many steps in this process (resume later)
  config.profile_steps = 0            # >0: a jax.profiler trace of this many steps into WORKDIR/profile,
                                      # from the first window sampled from the bank
  # The loop's implicit host<->device transfers (jax.transfer_guard): allow | log (each one logged, with
  # its source) | disallow (each one an error). The loop itself makes none: every transfer is explicit.
  config.transfer_guard = "allow"
  return config
