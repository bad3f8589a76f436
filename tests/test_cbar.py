"Tests of robust_labels.cbar: the CIFAR-10-C-bar corruptions and the augmented validation set."
import pytest
import torch

import robust_labels.cbar as rcb
from robust_labels.cbar import CBAR_CORRUPTIONS, augmented_validation, cbar_corrupt
from robust_labels.core import make_generator
from images import digits, smooth_images

torch.set_num_threads(1)
SEVERITIES = range(1, 6)


# ---------------------------------------------------------------- CIFAR-10-C-bar and the augmented validation set

@pytest.mark.parametrize('name', CBAR_CORRUPTIONS)
def test_cbar_corruptions(name):
    x = smooth_images(2)
    for s in SEVERITIES:
        y = cbar_corrupt(x, name, s, make_generator(s))
        assert y.shape == x.shape and y.dtype == x.dtype and 0 <= y.min() and y.max() <= 1
        assert not torch.equal(y, x), (name, s)
    assert torch.equal(cbar_corrupt(x, name, 3, make_generator(1)), cbar_corrupt(x, name, 3, make_generator(1)))
    g = cbar_corrupt(digits(2), name, 4, make_generator(0))
    assert g.shape == (2, 1, 8, 8) and 0 <= g.min() and g.max() <= 1


def test_cbar_severities_are_the_reference_table():
    assert rcb.CBAR_SEVERITIES['sparkles'] == (0.7, 3.5, 5.6, 6.3, 7.0)


def test_cbar_specifics():
    x = smooth_images(3)
    # blue-noise sample only blacks out pixels (all channels together)
    y = cbar_corrupt(x, 'blue_noise_sample', 5, make_generator(0))
    dark = (y == 0).all(1)
    assert dark.any() and torch.equal(y[~dark.unsqueeze(1).expand_as(y)], x[~dark.unsqueeze(1).expand_as(x)])
    # checkerboard cutout paints cells mid-gray and leaves the rest
    y = cbar_corrupt(x, 'checkerboard_cutout', 5, make_generator(0))
    changed = (y != x).any(1)
    assert torch.allclose(y.permute(0, 2, 3, 1)[changed], torch.tensor(128 / 255))
    # circular motion blur is deterministic (no random parameter)
    assert torch.equal(cbar_corrupt(x, 'circular_motion_blur', 2, make_generator(0)),
                       cbar_corrupt(x, 'circular_motion_blur', 2, make_generator(9)))
    with pytest.raises(ValueError, match="name must be one of 'blue_noise_sample'"): cbar_corrupt(x, 'fog', 1)


def test_augmented_validation():
    x, y = smooth_images(20, seed=3), torch.arange(20) % 10
    xa, ya = augmented_validation(x, y, make_generator(0))
    assert xa.shape == x.shape and torch.equal(ya, y)
    assert (xa - x).flatten(1).abs().amax(1).gt(0).float().mean() >= 0.9
    assert torch.equal(xa, augmented_validation(x, y, make_generator(0))[0])
    assert not torch.equal(xa, augmented_validation(x, y, make_generator(1))[0])
    xall, yall = augmented_validation(x[:2], y[:2], make_generator(0), corruptions=['lines', 'ripple'],
                                      severities=(1, 5), mode='all')
    assert xall.shape == (8, 3, 32, 32) and yall.tolist() == [0, 1] * 4
    with pytest.raises(ValueError, match="mode must be one of 'sample', 'all'"): augmented_validation(x, y, mode='both')
    with pytest.raises(ValueError, match='corruptions must be one of'): augmented_validation(x, y, corruptions=['fog'])
    with pytest.raises(ValueError, match='y must hold 20 labels'): augmented_validation(x, y[:3])
