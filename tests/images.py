"Small test images shared by the corruption tests."
import torch
import torch.nn.functional as F

from robust_labels.core import make_generator


def smooth_images(n=4, size=32, channels=3, seed=0):
    "Smooth random images (bicubic up-sampled noise): closer to natural images than white noise."
    z = torch.rand(n, channels, max(2, size // 4), max(2, size // 4), generator=make_generator(seed))
    return F.interpolate(z, size=size, mode='bicubic', align_corners=False).clamp(0, 1)


def digits(n=6):
    "The first `n` handwritten digits as a (n, 1, 8, 8) batch in [0, 1]."
    from sklearn.datasets import load_digits
    return torch.tensor(load_digits().images[:n] / 16, dtype=torch.float32)[:, None]
