"The T2T-ViT recipes of robust_labels.train: AdamW without decay on 1-d parameters, timm's warmup-cosine schedule."
import math

import pytest
import torch
from torch import nn

from robust_labels.train import RECIPES, Recipe, get_recipe, make_optimizer


def test_t2t_recipe_schedule_and_optimizer():
    r = get_recipe('t2t-vit-14')
    assert (r.optimizer, r.lr, r.batch_size, r.weight_decay, r.epochs) == ('adamw', 5e-4, 512, 0.05, 310)
    opt, sched = make_optimizer(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), r)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g['weight_decay'] for g in opt.param_groups] == [0.05, 0.0]
    lrs = []
    for _ in range(r.epochs):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-6) and lrs[10] == pytest.approx(5e-4 * (1 + math.cos(math.pi / 30)) / 2, rel=0.02)
    assert max(lrs) <= 5e-4 and lrs[300:] == pytest.approx([1e-5] * 10)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11]))          # warming up
    assert all(a >= b for a, b in zip(lrs[10:300], lrs[11:301]))      # then decaying


def test_sgd_recipes_keep_their_schedulers():
    opt, sched = make_optimizer(nn.Linear(2, 2), RECIPES['smoke'])
    assert isinstance(opt, torch.optim.SGD) and isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)


def test_bad_recipe_fields():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Recipe(optimizer='adam')
    with pytest.raises(ValueError, match="need schedule='cosine'"):
        Recipe(schedule='multistep', milestones=(2,), warmup_epochs=1)
    with pytest.raises(ValueError, match="cooldown_epochs"):
        Recipe(epochs=5, warmup_epochs=3, cooldown_epochs=2)


def test_adamw_warmup_run_resumes_exactly(tmp_path):
    "An AdamW warmup-cosine run interrupted after epoch 2 and resumed ends with the weights of an uninterrupted run."
    from robust_labels.data import get_dataset
    from robust_labels.models import create_model
    from robust_labels.train import fit
    r = Recipe(epochs=4, lr=1e-3, batch_size=64, weight_decay=0.05, optimizer='adamw', warmup_epochs=1, warmup_lr=1e-5,
               min_lr=1e-5, cooldown_epochs=1)
    train, val = get_dataset('digits', 'train'), get_dataset('digits', 'val')

    def run(folder, stop=None, resume=False):
        torch.manual_seed(0)
        model = create_model('cnn', 10, in_channels=1)
        def cb(rec):
            if stop is not None and rec['epoch'] == stop: raise KeyboardInterrupt
        try: fit(model, train, val, r, device='cpu', checkpoint_dir=folder, resume=resume, progress=False, callback=cb,
                 restore_best=False)
        except KeyboardInterrupt: pass
        return model

    whole = run(tmp_path / 'a')
    run(tmp_path / 'b', stop=2)
    resumed = run(tmp_path / 'b', resume=True)
    for p, q in zip(whole.parameters(), resumed.parameters()): assert torch.equal(p, q)


def test_fewer_epochs_shrink_warmup_and_cooldown():
    "`--set epochs=1` on a T2T-ViT recipe (10 warmup + 10 cooldown of 310) gives a valid one-epoch recipe."
    from robust_labels.config import RunConfig
    from robust_labels.train import get_recipe
    r = get_recipe('t2t-vit-24', epochs=62)
    assert (r.warmup_epochs, r.cooldown_epochs) == (2, 2)
    r = RunConfig(dataset='imagenet', model='t2t_vit_14', recipe='vs-t2t-vit-14', epochs=1).recipe_()
    assert (r.epochs, r.warmup_epochs, r.cooldown_epochs) == (1, 0, 0)
    assert get_recipe('t2t-vit-14', epochs=5, warmup_epochs=2).warmup_epochs == 2     # explicit values are kept
