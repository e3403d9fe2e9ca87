"""SimCLR on ImageNet-100 (the standard 100-class subset of ImageNet-1k, Tian et al. 2019).

Reads tfds `imagenet2012` from a local data_dir (manual download; see tfds' imagenet2012 page), keeps the
100 classes' JPEG bytes in host memory (~14 GB) and decodes them in tf.data; with the dataset in
ArrayRecord format, `--config.data_reader=random_access` reads them by index instead (no 14 GB). ResNet-50
with the standard stem at 224×224, B = 256, Adam 1e-3 with weight decay 1e-6, NT-Xent at temperature 0.5
(the reference setup's optimiser and loss), ProSampler M = 1000, K = 100, α = 0.2, refresh every 100
steps.

  python -m prosampler_jax.main --config=experiments/configs/simclr_imagenet100.py \
      --workdir=runs/imagenet100 --config.data_dir=/path/to/tensorflow_datasets
"""

from experiments.configs import simclr_stl10


def get_config():
  config = simclr_stl10.get_config()
  config.dataset = "imagenet100"
  config.model.cifar_stem = False
  config.eval_batch_size = 256
  return config
