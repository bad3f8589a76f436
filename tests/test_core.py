"Tests of robust_labels.core: files that follow the umask, devices that exist, unit-range checks."
import os, stat

import numpy as np
import pytest
import torch

from robust_labels.core import (atomic_save, atomic_save_npy, atomic_write, atomic_write_json, check_batch,
                                check_images, default_device)


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_atomic_files_follow_the_umask(tmp_path, umask):
    "A team sharing an output folder can read each other's results: mode 0666 & ~umask, as open() would give."
    old = os.umask(umask)
    try:
        paths = [atomic_write(tmp_path / 'a.txt', 'x'), atomic_write_json(tmp_path / 'b.json', {'a': 1}),
                 atomic_save({'w': torch.zeros(2)}, tmp_path / 'c.pt'), atomic_save_npy(tmp_path / 'd.npy', np.zeros(2))]
    finally: os.umask(old)
    for p in paths: assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
    assert not list(tmp_path.glob('.*.tmp'))


def test_default_device_names_what_is_available():
    assert default_device('cpu') == torch.device('cpu')
    assert default_device(None).type in ('cpu', 'cuda')
    for bad in ('gpu', 'cuda:x', ''):
        with pytest.raises(ValueError, match=r"device .*available: .*cpu"): default_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' needs a CUDA GPU.*available: 'cpu'"):
            default_device('cuda')
    else:
        with pytest.raises(ValueError, match=r"device 'cuda:99'"):
            default_device('cuda:99')


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf'), 1.5, -0.1])
def test_unit_batches_reject_nan_inf_and_out_of_range(bad):
    "A NaN pixel makes `lo < 0 or hi > 1` False; the check must still refuse it."
    x = torch.rand(2, 1, 3, 3)
    x[1, 0, 2, 1] = bad
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\] and be finite'): check_batch(x, unit=True)
    with pytest.raises(ValueError, match=r'img must lie in \[0, 1\] and be finite'): check_images(x, name='img')


def test_unit_batches_accept_valid_values():
    half_ones = torch.ones(1, 1, 2, 2, dtype=torch.float16)
    for x in (torch.rand(2, 3), torch.zeros(1, 1, 2, 2), half_ones, torch.empty(0, 3)):
        assert check_batch(x, unit=True) is x
    assert check_images(torch.rand(2, 3, 4, 4)) is not None
