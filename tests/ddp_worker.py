"""What tests/test_ddp.py runs under `torchrun --standalone --nproc_per_node 2` (and in one process, as the reference).

`python ddp_worker.py CASE OUT [options]`: trains the digits CNN (no BatchNorm, so each rank's forward pass is the
same function of its examples as in one process) and saves each rank's final weights to `OUT/rank<r>.pt`.
"""
import argparse, os, sys, time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from robust_labels.core import world
from robust_labels.data import get_dataset
from robust_labels.models import create_model
from robust_labels.train import fit, get_recipe, standard_loss


class NotInMemory(Dataset):
    "A dataset `make_loader` cannot see into, so it takes the DataLoader path."
    def __init__(self, ds): self.ds = ds
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.ds[i]


def digits(n=None, dtype=torch.float32):
    "The digits training and validation splits (the first `n` training examples), images as `dtype`."
    train, val = get_dataset('digits', 'train'), get_dataset('digits', 'val')
    train, val = (torch.utils.data.TensorDataset(d.tensors[0][:n].to(dtype), d.tensors[1][:n]) for d in (train, val))
    return train, val


def train_cnn(train, val, epochs=2, batch=32, ckdir=None, resume=False, loss_fn=standard_loss, seed=0, **kw):
    "The digits CNN trained with the smoke recipe; the model (its last epoch's weights) and the FitResult."
    torch.manual_seed(seed)
    model = create_model('cnn', kw.pop('classes', 10), in_channels=1).to(kw.pop('dtype', torch.float32))
    res = fit(model, train, val, get_recipe('smoke', epochs=epochs, batch_size=batch), device='cpu', seed=seed,
              progress=False, restore_best=False, checkpoint_dir=ckdir, resume=resume, loss_fn=loss_fn, **kw)
    return model, res


def killer(step, hang=False):
    "A loss that makes rank 1 die (os._exit), or hang, at its `step`-th training step: a process killed mid-epoch."
    calls = [0]
    def loss(model, x, targets):
        calls[0] += 1
        if world()[0] == 1 and calls[0] == step:
            if hang: time.sleep(3600)
            os._exit(3)
        return standard_loss(model, x, targets)
    return loss


def regimes(train):
    "One small instance of every regime, with the model it trains."
    from robust_labels.labels import OneHot
    from robust_labels.regimes import AT, ARD, AWP, DIGITS_THREAT, KD, OE, RST, SSL, TRADES
    x = train.tensors[0]
    torch.manual_seed(7)                          # the same teacher in every process
    teacher = create_model('cnn', 10, in_channels=1)
    outliers = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return dict(at=(AT(**DIGITS_THREAT), 10), trades=(TRADES(**DIGITS_THREAT), 10),
                awp=(AWP(TRADES(**DIGITS_THREAT)), 10), kd=(KD(teacher, temperature=4.0), 10),
                ard=(ARD(teacher, **DIGITS_THREAT), 10), oe=(OE(outliers, 10, ratio=1.0), 10),
                ssl=(SSL(outliers, OneHot(11), 10, ratio=1.0), 11),
                rst=(RST(TRADES(**DIGITS_THREAT), x[:64], OneHot(10), teacher=teacher), 10))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('case', choices=['fit', 'loader', 'resume', 'regimes', 'batch'])
    p.add_argument('out')
    p.add_argument('--ckdir')
    p.add_argument('--kill-at', type=int, default=0)
    p.add_argument('--hang', action='store_true', help='rank 1 stalls at --kill-at instead of dying')
    p.add_argument('--resume', action='store_true')
    p.add_argument('--straight', help='first train the same run without --kill-at and save its weights here')
    p.add_argument('--only', default='')
    p.add_argument('--double', action='store_true', help='train in float64, where one and two processes agree to 1e-9')
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rank = world()[0]
    dtype = torch.float64 if a.double else torch.float32
    train, val = digits(dtype=dtype)
    saved = {}
    if a.case in ('fit', 'loader'):
        data = train if a.case == 'fit' else NotInMemory(train)
        model, res = train_cnn(data, val, dtype=dtype)
        saved = dict(model=model.state_dict(), history=res.history)
    elif a.case == 'resume':
        loss = killer(a.kill_at, a.hang) if a.kill_at else standard_loss
        train, val = digits(280)                      # 9 batches an epoch, the last of 24 (12 a rank)
        if a.straight:
            model, res = train_cnn(train, val)
            Path(a.straight).mkdir(parents=True, exist_ok=True)
            torch.save(dict(model=model.state_dict(), history=res.history), Path(a.straight) / f'rank{rank}.pt')
        model, res = train_cnn(train, val, ckdir=a.ckdir, resume=a.resume, loss_fn=loss)
        saved = dict(model=model.state_dict(), history=res.history, resumed_from=res.resumed_from)
    elif a.case == 'batch':
        train_cnn(train, val, batch=33)
    else:
        small, _ = digits(125)                        # 3 batches of 32 and one of 29 (15 + 14 on two ranks)
        for name, (regime, classes) in regimes(small).items():
            if a.only and name not in a.only.split(','): continue
            model, res = train_cnn(small, val, epochs=1, loss_fn=regime, classes=classes)
            saved[name] = dict(model=model.state_dict(), history=res.history)
    torch.save(saved, out / f'rank{rank}.pt')


if __name__ == '__main__': main(sys.argv[1:])
