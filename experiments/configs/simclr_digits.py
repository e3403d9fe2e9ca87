"""SimCLR on scikit-learn's 8×8 digits: real data that works offline, a run in about a minute on CPU.

  python -m prosampler_jax.main --config=experiments/configs/simclr_digits.py --workdir=runs/digits \
      --config.sampler.name=proximity
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.dataset = "digits"
  config.num_epochs = 30
  config.batch_size = 128
  config.eval_batch_size = 512
  config.model.encoder = "small_cnn"
  config.model.width = 32
  config.model.projection_dim = 64
  config.loss.temperature = 0.5
  config.sampler.num_neighbors = 50
  config.sampler.num_candidates = 500
  config.eval.linear_epochs = 100
  config.eval.linear_learning_rate = 1e-2  # 1,437 training items: 1e-3 under-trains in 100 epochs
  config.log_every_steps = 50
  config.checkpoint_steps = 200
  return config
