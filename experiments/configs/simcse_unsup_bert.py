"""Unsupervised SimCSE with BERT-base (Gao et al. 2021, Table: STS avg 76.25 in SimCSE, 75.60 → 76.69 with
ProSampler in the BatchSampler paper): wiki1m, lr 3e-5, batch 64, max_len 32, t = 0.05, 1 epoch, [CLS] with
the MLP in training only; STS-B dev every 250 steps.

Needs a GPU, `bert-base-uncased` in safetensors (config.json, model.safetensors, vocab.txt or
tokenizer.json) and SimCSE's wiki1m_for_simcse.txt in data_dir:

  python -m prosampler_jax.main --config=experiments/configs/simcse_unsup_bert.py --workdir=runs/unsup \
      --config.model.checkpoint=/data/bert-base-uncased --config.data_dir=/data/simcse \
      --config.eval.sts_dir=/data/sts --config.sampler.name=proximity   # or uniform | tail

The step count of one epoch is 1,000,000 // 64 = 15,625; ProSampler refreshes every t = 100 steps with
M = 1000 candidates and K = 100 neighbours (the paper's text setting); TBS keeps ≈ N·B edges.
"""

from experiments.configs import simcse_base


def get_config():
  config = simcse_base.get_config()
  config.dataset = "wiki1m"
  config.num_epochs = 1
  config.batch_size = 64
  config.model.dtype = "bfloat16"
  config.model.pooling = "cls"
  config.model.mlp_only_train = True
  config.model.max_len = 32
  config.optimizer.learning_rate = 3e-5
  config.sampler.name = "proximity"
  config.sampler.refresh_steps = 100
  config.sampler.num_candidates = 1000
  config.sampler.num_neighbors = 100
  config.checkpoint_steps = 250
  # The bank holds both 768-wide views: at wiki1m 5.9 GB float32 on every device; bf16 and split over the
  # devices it is 366 MiB each on 8 (experiments/bench/bank_memory.py). A split bank samples the same batches.
  config.bank_dtype = "bfloat16"
  config.bank_sharding = "data"
  config.log_every_steps = 50
  return config
