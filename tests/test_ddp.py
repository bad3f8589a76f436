"""`fit` and the regimes under `torchrun --standalone --nproc_per_node 2` on the CPU (gloo): the same weights as one
process, resume after a rank is killed, clear errors, no hangs. The workers are in tests/ddp_worker.py.

Exactness: the digits CNN has no BatchNorm, so each rank's forward pass is the same function of its examples as in
one process (with BatchNorm the ranks' batch statistics differ unless `sync_batchnorm=True`, which torch runs on GPUs
only). Trained in float64, one and two processes agree to ~1e-15; in float32 the rounding of the gradient average
differs and SGD amplifies it to ~1e-3 in the weights after two epochs, which is why the comparisons use float64.
"""
import os, subprocess, sys, types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker as w                                              # noqa: E402

from robust_labels.core import all_gather_int, is_main_process, unwrap, world   # noqa: E402
from robust_labels.data import TensorLoader, make_loader                         # noqa: E402
from robust_labels.train import fit_state, get_recipe, save_checkpoint, tensorboard_logger   # noqa: E402
from robust_labels.models import create_model                                    # noqa: E402

WORKER = str(Path(__file__).parent / 'ddp_worker.py')


def torchrun(*args, nproc=2, **env):
    "Run the worker under torchrun on the CPU; the finished process (never left hanging: torchrun stops the others)."
    e = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', **env)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc), WORKER,
           *map(str, args)]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)   # a guard against a hang only


def ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def ranks(out):
    return [torch.load(Path(out) / f'rank{r}.pt', weights_only=False) for r in (0, 1)]


def max_diff(a:dict, b:dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def same(a:dict, b:dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def records(history):
    "The epoch records without their durations."
    return [{k: v for k, v in h.items() if k != 'seconds'} for h in history]


@pytest.mark.parametrize('case', ['fit', 'loader'])
def test_two_processes_reach_the_weights_of_one(case, tmp_path):
    "The in-memory loader and the DataLoader path: 2 ranks x 16 = one process x 32, including the uneven last batch."
    ok(torchrun(case, tmp_path / 'two', '--double'))
    r0, r1 = ranks(tmp_path / 'two')
    train, val = w.digits(dtype=torch.float64)
    data = train if case == 'fit' else w.NotInMemory(train)
    model, res = w.train_cnn(data, val, dtype=torch.float64)
    assert same(r0['model'], r1['model'])                          # every rank ends with the same weights
    assert records(r0['history']) == records(r1['history'])          # and the same records (reduced loss, val acc)
    assert max_diff(r0['model'], model.state_dict()) < 1e-9
    assert [h['val_acc'] for h in r0['history']] == [h['val_acc'] for h in res.history]
    for a, b in zip(r0['history'], res.history): assert abs(a['train_loss'] - b['train_loss']) < 1e-9


def test_a_rank_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    "Rank 1 dies in epoch 2 (torchrun stops rank 0); restarted with resume, the run ends as if never stopped."
    killed = torchrun('resume', tmp_path / 'killed', '--ckdir', tmp_path / 'ck', '--kill-at', 14,   # 9 steps an epoch
                      '--straight', tmp_path / 'straight')      # first, the same run uninterrupted, in its own folder
    assert killed.returncode != 0 and 'exitcode  : 3' in killed.stderr
    assert not (tmp_path / 'killed' / 'rank0.pt').exists()
    assert torch.load(tmp_path / 'ck' / 'last.pt', weights_only=True)['epoch'] == 1
    ok(torchrun('resume', tmp_path / 'resumed', '--ckdir', tmp_path / 'ck', '--resume'))
    straight, resumed = ranks(tmp_path / 'straight'), ranks(tmp_path / 'resumed')
    assert resumed[0]['resumed_from'] == 1 and resumed[1]['resumed_from'] == 1   # both ranks read rank 0's checkpoint
    assert same(resumed[0]['model'], straight[0]['model']) and same(resumed[1]['model'], straight[0]['model'])
    assert records(resumed[0]['history']) == records(straight[0]['history'])


def test_a_stalled_rank_makes_the_others_fail_after_the_timeout(tmp_path):
    "A rank that hangs (not dies): the others' collective times out after ROBUST_LABELS_DIST_TIMEOUT seconds."
    p = torchrun('resume', tmp_path / 'o', '--kill-at', 5, '--hang', ROBUST_LABELS_DIST_TIMEOUT='5')
    assert p.returncode != 0
    assert 'Timed out' in p.stdout + p.stderr


def test_a_batch_the_world_cannot_share_is_a_clear_error(tmp_path):
    p = torchrun('batch', tmp_path / 'o')
    assert p.returncode != 0
    assert 'batch_size 33 of the recipe is not divisible by the world size 2' in p.stdout + p.stderr


def test_every_regime_trains_under_two_processes(tmp_path):
    "Every regime runs on 2 ranks that agree; the deterministic ones (KD, OE, SSL) match one process."
    ok(torchrun('regimes', tmp_path / 'two'))
    r0, r1 = ranks(tmp_path / 'two')
    assert set(r0) == {'at', 'trades', 'awp', 'kd', 'ard', 'oe', 'ssl', 'rst'}
    for name in r0:
        assert same(r0[name]['model'], r1[name]['model']), name
        assert records(r0[name]['history']) == records(r1[name]['history']), name
        assert all(torch.isfinite(v).all() for v in r0[name]['model'].values() if v.is_floating_point()), name
    small, val = w.digits(125)
    for name, (regime, classes) in w.regimes(small).items():
        if name not in ('kd', 'oe', 'ssl'): continue      # PGD's random starts are drawn per rank: close, not equal
        model, _ = w.train_cnn(small, val, epochs=1, loss_fn=regime, classes=classes)
        assert max_diff(r0[name]['model'], model.state_dict()) < 1e-5, name


def test_the_train_command_under_torchrun_reports_once(tmp_path):
    "`torchrun -m robust_labels.cli train`: both ranks train, rank 0 alone writes the run and prints."
    e = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m',
           'robust_labels.cli', 'train', '--epochs', '1', '--device', 'cpu', '--out', str(tmp_path), '--quiet']
    p = ok(subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600))
    assert p.stdout.count('result: ') == 1 and p.stdout.count('"val_accuracy"') == 1
    (result,) = (tmp_path / 'runs').glob('*.json')
    assert result.name in p.stdout
    assert [f.name for f in (tmp_path / 'models').iterdir()] == [result.stem + '.pt']


# In one process: the checks that need no process group.

def test_single_process_helpers():
    assert world() == (0, 1) and is_main_process()
    assert all_gather_int(4) == [4]
    lin = torch.nn.Linear(1, 1)
    assert unwrap(lin) is lin


def test_rank_parts_of_the_in_memory_batches_make_the_whole_batches():
    x, y = torch.arange(23.).view(23, 1), torch.arange(23)
    whole = [b for _, b in TensorLoader(x, y, 6, True, generator=torch.Generator().manual_seed(0))]
    parts = [[b for _, b in TensorLoader(x, y, 6, True, generator=torch.Generator().manual_seed(0), shard=(r, 2))]
             for r in (0, 1)]
    assert [torch.cat(p).tolist() for p in zip(*parts)] == [b.tolist() for b in whole]
    three = [list(TensorLoader(x[:20], y[:20], 6, shard=(r, 3))) for r in range(3)]
    assert [len(p) for p in three] == [3, 3, 3]                     # the last batch (2 examples < 3 ranks): left out


def test_rank_parts_of_the_dataloader_batches_make_the_whole_batches():
    ds = w.NotInMemory(torch.utils.data.TensorDataset(torch.zeros(11, 1), torch.arange(11)))
    gens = [torch.Generator().manual_seed(4) for _ in range(3)]
    whole = [b for _, b in make_loader(ds, 4, True, 'cpu', gens[0])]
    parts = [[b for _, b in make_loader(ds, 4, True, 'cpu', gens[1 + r], shard=(r, 2))] for r in (0, 1)]
    assert [torch.cat(p).tolist() for p in zip(*parts)] == [b.tolist() for b in whole]
    assert torch.equal(gens[1].get_state(), gens[0].get_state())
    with pytest.raises(ValueError, match='shard rank must be an integer in'): make_loader(ds, 4, shard=(2, 2))


def test_bad_world_settings_fail_before_joining(monkeypatch):
    "Errors that torchrun would hit are raised before any process waits for the group."
    model = create_model('cnn', 10, in_channels=1)
    monkeypatch.setenv('WORLD_SIZE', '3')
    with pytest.raises(ValueError, match='batch_size 32 of the recipe is not divisible by the world size 3'):
        fit_state(model, 'smoke', device='cpu')
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(ValueError, match='sync_batchnorm=True needs CUDA devices'):
        fit_state(model, 'smoke', device='cpu', sync_batchnorm=True)


def test_sync_batchnorm_is_a_no_op_in_one_process():
    model = create_model('wrn-10-1', 10, in_channels=1)
    st = fit_state(model, get_recipe('smoke'), device='cpu', sync_batchnorm=True)
    assert st.ddp is None
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())


def test_only_rank_0_writes(monkeypatch, tmp_path):
    st = fit_state(create_model('cnn', 10, in_channels=1), 'smoke', device='cpu')
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    assert not is_main_process()
    save_checkpoint(st, tmp_path / 'ck', 1, new_best=True)
    assert not (tmp_path / 'ck').exists()
    made = []
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=made.append))
    tb = tensorboard_logger(tmp_path / 'tb')
    tb(dict(epoch=1, train_loss=1.0))
    tb.close()
    assert tb.epochs == 1 and made == []          # rank 1 made no writer
