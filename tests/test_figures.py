"Tests of robust_labels.figures: one save helper, and the plots saved through it."
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pandas as pd

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
