"""SimCLR on STL-10 — the ProSampler paper's reference image setup.

STL-10 train+unlabeled (105k images, 96×96), ResNet-50 with the CIFAR stem, B = 256, Adam 1e-3 with weight
decay 1e-6, NT-Xent at temperature 0.5, ProSampler M = 1000, K = 100, α = 0.2, graph refreshed every 100
steps after 1 uniform warm-up epoch. Needs the tfds `stl10` dataset under data_dir.

  python -m prosampler_jax.main --config=experiments/configs/simclr_stl10.py --workdir=runs/stl10 \
      --config.data_dir=$HOME/tensorflow_datasets --config.sampler.name=proximity
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.dataset = "stl10"
  config.num_epochs = 200
  config.batch_size = 256
  config.model.encoder = "resnet50"
  config.model.cifar_stem = True
  config.model.dtype = "bfloat16"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-6
  config.loss.name = "nt_xent"
  config.loss.temperature = 0.5
  config.sampler.name = "proximity"
  config.sampler.num_candidates = 1000
  config.sampler.num_neighbors = 100
  config.sampler.restart_prob = 0.2
  config.sampler.refresh_steps = 100
  config.sampler.warmup_epochs = 1
  config.eval_every_epochs = 5
  config.checkpoint_steps = 2000
  return config
