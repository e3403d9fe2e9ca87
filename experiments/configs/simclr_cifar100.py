"""SimCLR on CIFAR-100 with the ProSampler reference setup (as for STL-10, at 32×32).

ResNet-50 with the CIFAR stem, B = 256, Adam 1e-3 with weight decay 1e-6, NT-Xent at temperature 0.5,
ProSampler M = 1000, K = 100, α = 0.2, refresh every 100 steps after 1 uniform warm-up epoch.
Needs the tfds `cifar100` dataset under data_dir.

  python -m prosampler_jax.main --config=experiments/configs/simclr_cifar100.py --workdir=runs/cifar100 \
      --config.data_dir=$HOME/tensorflow_datasets --config.sampler.name=proximity
"""

from experiments.configs import simclr_stl10


def get_config():
  config = simclr_stl10.get_config()
  config.dataset = "cifar100"
  return config
