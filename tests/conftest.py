"Test session settings."
import os

import torch

# The models under test are small; one intra-op thread per test process avoids oversubscribing the CPU
# (pytest-xdist runs one process per core), which on 2 cores made steps ~10x slower.
torch.set_num_threads(1)
os.environ.setdefault('IN_TEST', '1')
