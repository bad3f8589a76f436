"Tests of robust_labels.figures: one save helper, and the plots saved through it."
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from robust_labels.figures import plot_bars, plot_lines, save_figure


def test_save_figure_makes_the_folder_and_passes_the_settings(tmp_path, monkeypatch):
    fig, _ = plt.subplots()
    calls = []
    monkeypatch.setattr(fig, 'savefig', lambda path, **kw: calls.append((path, kw)))
    assert save_figure(fig, tmp_path / 'a' / 'b.png') is fig and (tmp_path / 'a').is_dir()
    save_figure(fig, tmp_path / 'c.png', dpi=110, bbox_inches='tight')
    assert calls == [(tmp_path / 'a' / 'b.png', dict(dpi=120)), (tmp_path / 'c.png', dict(dpi=110, bbox_inches='tight'))]
    assert save_figure(fig) is fig and len(calls) == 2


def test_plots_write_their_files(tmp_path):
    runs = pd.DataFrame(dict(labels=['onehot', 'vs'] * 2, alpha=[0.1, 0.1, 0.5, 0.5], acc=[90.0, 92, 91, 93]))
    plot_lines(runs, x='alpha', y='acc', hue='labels', path=tmp_path / 'lines.png')
    plot_bars(runs, x='labels', y='acc', path=tmp_path / 'bars.png')
    assert (tmp_path / 'lines.png').stat().st_size > 0 and (tmp_path / 'bars.png').stat().st_size > 0


def test_paper_values_only_in_the_papers_setting():
    "paper_values: the reference table when the setting is the paper's; None and the reason otherwise."
    from robust_labels.figures import paper_values
    ref, why = paper_values('vs_table13', dict(dataset='cifar10', model='resnet18'), dict(dataset='cifar10', model='resnet18'))
    assert why == '' and {'dataset', 'model', 'alpha'} <= set(ref.columns)
    ref, why = paper_values('vs_table13', dict(dataset='digits', model='resnet18'), dict(dataset='cifar10', model='resnet18'))
    assert ref is None and why == "the setting differs (dataset 'digits', the paper's 'cifar10')"
    assert paper_values('vs_fig3', {}, {})[1] == 'the paper gives no numbers for vs_fig3 (no data/paper/vs_fig3.csv)'


def test_overlay_paper_draws_stars_or_says_why_not():
    import matplotlib.pyplot as plt
    from robust_labels.figures import overlay_paper
    fig, ax = plt.subplots()
    ax.plot([0.1, 0.5], [90, 91], label='ours')
    paper = pd.DataFrame(dict(model=['a', 'a', 'b'], alpha=[0.1, 0.5, 0.5], acc=[89.0, 92.0, None]))
    assert overlay_paper(ax, paper, 'alpha', 'acc', query="model == 'a'")
    stars = [c for c in ax.collections if c.get_label() == 'paper']
    assert len(stars) == 1 and stars[0].get_offsets().shape == (2, 2)
    fig, ax = plt.subplots()
    ax.plot([0.1], [90], label='ours')
    assert not overlay_paper(ax, paper, 'alpha', 'acc', query="model == 'b'")      # the only row has no value
    assert ax.get_legend().get_texts()[-1].get_text() == 'paper values not shown: no paper values for these rows'
    with pytest.raises(ValueError, match="x and y must be columns of paper"):
        overlay_paper(ax, paper, 'alpha', 'ece')
    plt.close('all')
