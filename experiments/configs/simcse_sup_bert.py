"""Supervised SimCSE with BERT-base (Gao et al. 2021): SNLI+MNLI triplets (nli_for_simcse.csv: anchor,
entailment, contradiction as hard negative), lr 5e-5, batch 512, max_len 32, t = 0.05, 3 epochs, [CLS]
with the MLP in training and evaluation.

  python -m prosampler_jax.main --config=experiments/configs/simcse_sup_bert.py --workdir=runs/sup \
      --config.model.checkpoint=/data/bert-base-uncased --config.data_dir=/data/simcse \
      --config.eval.sts_dir=/data/sts --config.sampler.name=tail   # or uniform | proximity

Tail Batch Sampling sees (anchor, positive) embedding pairs: the paired data it was designed for.
"""

from experiments.configs import simcse_base


def get_config():
  config = simcse_base.get_config()
  config.dataset = "nli"
  config.num_epochs = 3
  config.batch_size = 512
  config.model.dtype = "bfloat16"
  config.model.pooling = "cls"
  config.model.mlp_only_train = False
  config.model.max_len = 32
  config.optimizer.learning_rate = 5e-5
  config.sampler.name = "tail"
  config.sampler.refresh_steps = 0    # TBS re-orders once per epoch
  config.checkpoint_steps = 250
  # The bank holds two 768-wide views per triplet: at NLI's 275k triplets 1.6 GB float32 on every device;
  # bf16 and split over 8 devices, 101 MiB each (experiments/bench/bank_memory.py --n=275601 --dim=1536).
  # A split bank samples the same batches.
  config.bank_dtype = "bfloat16"
  config.bank_sharding = "data"
  config.log_every_steps = 50
  return config
