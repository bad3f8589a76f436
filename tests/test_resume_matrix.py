"Kill-and-resume matrix: every baseline augmentation and every regime, wired by setup.fit_config, resumes bitwise."
import dataclasses, json, os, random, signal, subprocess, sys, textwrap

import numpy as np
import pytest
import torch

from robust_labels.augment import BASELINES
from robust_labels.config import REGIMES, RunConfig
from robust_labels.core import atomic_save, atomic_write_json
from robust_labels.setup import fit_config, model_path, result_path

EPOCHS = 2
BASE = RunConfig(dataset='digits', model='cnn', recipe='smoke', epochs=EPOCHS, batch_size=128, seed=1)
TEACHER = BASE.replace(epochs=1, seed=7)


class Killed(Exception):
    "Stands for the process dying right after an epoch's checkpoint was written."


def _stop_after(epochs):
    def cb(rec):
        if rec['epoch'] >= epochs: raise Killed
    return cb


def _scramble(seed):
    "A restarted process: the global generators hold whatever they hold, not what the first process left."
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _last(ckdir): return torch.load(ckdir / 'last.pt', weights_only=True)


def _differ(a:dict, b:dict) -> dict:
    "The tensors of two state dicts that are not bitwise equal, with their largest difference."
    return {k: float((a[k].float() - b[k].float()).abs().max()) for k in a if not torch.equal(a[k], b[k])}


@pytest.fixture(scope='module')
def out_dir(tmp_path_factory):
    "An output folder with a trained standard run: the teacher of KD and ARD, RST's pseudo-labeller."
    out = tmp_path_factory.mktemp('out')
    model, _ = fit_config(TEACHER, device='cpu')
    atomic_save({'model': model.state_dict()}, model_path(out, TEACHER))
    atomic_write_json(result_path(out, TEACHER), {'config': dataclasses.asdict(TEACHER)})
    return out


def _cases():
    augs = {f'augment={a}': BASE.replace(augment=a) for a in BASELINES}
    regs = {f'regime={r}': BASE.replace(regime=r, teacher=TEACHER.run_id if r in ('kd', 'ard', 'rst') else '')
            for r in REGIMES if r != 'standard'}
    return {**augs, **regs}


@pytest.mark.parametrize('name', list(_cases()))
def test_killed_after_epoch_1_resumes_bitwise(name, out_dir, tmp_path):
    "Uninterrupted vs killed after epoch 1 and resumed in a fresh setup (new objects, other global RNG state)."
    cfg = _cases()[name]
    _scramble(101)
    straight, _ = fit_config(cfg, out_dir, device='cpu', checkpoint_dir=tmp_path / 'a')
    _scramble(202)
    with pytest.raises(Killed):
        fit_config(cfg, out_dir, device='cpu', checkpoint_dir=tmp_path / 'b', callback=_stop_after(1))
    _scramble(303)
    resumed, res = fit_config(cfg, out_dir, device='cpu', checkpoint_dir=tmp_path / 'b', resume=True)
    assert res.resumed_from == 1 and len(res.history) == EPOCHS
    a, b = _last(tmp_path / 'a'), _last(tmp_path / 'b')
    assert [r['train_loss'] for r in a['history']] == [r['train_loss'] for r in b['history']], name
    diff = _differ(a['model'], b['model'])
    assert not diff, f"{name}: resumed final weights differ from the uninterrupted run's: {diff}"
    assert not _differ(straight.state_dict(), resumed.state_dict()), f"{name}: the selected weights differ"


_CHILD = textwrap.dedent('''
    import os, signal, sys, torch
    from robust_labels.config import RunConfig
    from robust_labels.setup import fit_config
    torch.set_num_threads(1)
    cfg, ckdir, kill = RunConfig(**eval(sys.argv[1])), sys.argv[2], sys.argv[3] == 'kill'
    def die(rec):
        if kill and rec['epoch'] == 1: os.kill(os.getpid(), signal.SIGKILL)
    torch.manual_seed(int(sys.argv[4]))
    fit_config(cfg, device='cpu', checkpoint_dir=ckdir, resume=not kill, callback=die)
''')


def _child(cfg, ckdir, mode, seed):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, '-c', _CHILD, repr(dataclasses.asdict(cfg)), str(ckdir), mode, str(seed)],
                          env=env, capture_output=True, text=True, timeout=600)


def test_deepaugment_survives_a_real_sigkill(tmp_path):
    "A DeepAugment run SIGKILLed after epoch 1 and resumed in a new process ends with the uninterrupted weights."
    cfg = BASE.replace(augment='deepaugment')
    fit_config(cfg, device='cpu', checkpoint_dir=tmp_path / 'a')
    tmp_path = tmp_path / 'b'
    tmp_path.mkdir()
    p = _child(cfg, tmp_path, 'kill', 5)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert torch.load(tmp_path / 'last.pt', weights_only=True)['epoch'] == 1
    p = _child(cfg, tmp_path, 'resume', 6)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not _differ(_last(tmp_path.parent / 'a')['model'], _last(tmp_path)['model'])
