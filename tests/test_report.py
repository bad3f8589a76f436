"Tests of robust_labels.report: the static HTML/Markdown report of a results folder, checked in a headless browser."
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from robust_labels.report import claims_line, report_sections, shown, verdict, write_report  # noqa: E402
from robust_labels.tables import write_table  # noqa: E402

NAN = float('nan')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')


def _notebook(path, claim, duration=3.0, error=None):
    "An executed notebook as papermill leaves one (injected fig_dir, a claim cell, maybe an error)."
    cells = [dict(cell_type='code', metadata=dict(tags=['injected-parameters']), outputs=[], source=['seed = 0\n']),
             dict(cell_type='markdown', metadata={}, source=['## Does the claimed direction show?\n', '\n', claim])]
    if error:
        cells.append(dict(cell_type='code', metadata={}, source=['1/0'],
                          outputs=[dict(output_type='error', ename='ZeroDivisionError', evalue=error, traceback=[])]))
    nb = dict(metadata=dict(papermill=dict(duration=duration, exception=bool(error))), cells=cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


@pytest.fixture
def results(tmp_path):
    "A results folder laid out as `reproduce` leaves it: tables, claims, a figure, run records, executed notebooks."
    out = tmp_path / 'results' / 'smoke'
    t13 = pd.DataFrame(dict(dataset='digits', labels=['onehot', 'vs'], alpha=[0.0, 0.5], accuracy_mean=[91.2, 92.1],
                            accuracy_std=[0.4, 0.3], runs=[3, 3], paper_accuracy=[NAN, NAN],
                            accuracy=['91.20 ± 0.40', '92.10 ± 0.30']))
    write_table(t13, out, 'vs_table13', 'VS paper, Table 13: test accuracy (%) against alpha')
    claims = pd.DataFrame(dict(labels=['ls', 'vs'], improvement=[-0.5, 0.9], better=[False, True],
                               paper_improvement=[NAN, NAN]))
    write_table(claims, out, 'vs_table13_claims', 'Best alpha of each label scheme against one-hot')
    theory = pd.DataFrame(dict(claim=['Lemma 1', 'Theorem 1'], verdict=['holds', 'holds'], margin=[0.1, NAN]))
    write_table(theory, out, 'theory_checks', 'Numerical checks of the theory')
    write_table(pd.DataFrame(dict(paper=['SPIDER'], verdict=['holds'], checks=[2])), out, 'theory_checks_tally',
                'Verdicts per paper')
    write_table(pd.DataFrame(dict(a=[1])), out, 'stray_table', 'A table of no registered experiment')
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0.1, 0.5, 0.9], [91.0, 92.0, 91.5])
    (tmp_path / 'figures' / 'smoke').mkdir(parents=True)
    fig.savefig(tmp_path / 'figures' / 'smoke' / 'vs_table13.png', dpi=50)
    plt.close(fig)
    _notebook(out / 'notebooks' / 'vs_table13.ipynb', "The paper's claim: VS beats one-hot.", duration=75.0)
    _notebook(out / 'notebooks' / 'theory_checks.ipynb', 'Every check holds.')
    _notebook(out / 'notebooks' / 'vs_table12.ipynb', 'V = K is best.', error='division by zero')
    (out / 'runs').mkdir()
    for i in range(3):
        (out / 'runs' / f'r{i}.json').write_text(json.dumps(dict(timings=dict(train_seconds=2.0, total_seconds=2.5))))
    return out


def test_sections(results):
    secs = {s['name']: s for s in report_sections(results)}
    assert set(secs) == {'theory_checks', 'vs_table12', 'vs_table13', 'other'} and list(secs)[-1] == 'other'
    assert [t['name'] for t in secs['vs_table13']['tables']] == ['vs_table13', 'vs_table13_claims']
    assert secs['vs_table13']['figure'].name == 'vs_table13.png'   # found in figures/<preset> beside results/<preset>
    assert claims_line(secs['vs_table13']) == 'vs_table13: claims shown in 1 of 2 rows'
    assert claims_line(secs['theory_checks']) == 'theory_checks: claims shown in 2 of 2 rows'   # the tally not counted
    assert claims_line(secs['vs_table12']).startswith('vs_table12: failed (ZeroDivisionError: division by zero')
    assert [t['name'] for t in secs['other']['tables']] == ['stray_table']


def test_shown_drops_empty_columns():
    df = shown(pd.DataFrame(dict(a=[1.0, NAN], paper_a=[NAN, NAN])))
    assert list(df.columns) == ['a'] and df.a.tolist() == [1.0, '']
    assert verdict(pd.DataFrame(dict(agrees=[True, False], better=[True, True]))) == (1, 2, 'agrees')


def test_markdown_twin(results):
    paths = write_report(results)
    md = paths['md'].read_text()
    assert paths['md'] == results / 'report.md' and paths['html'] == results / 'report.html'
    assert 'paper_accuracy' not in md and 'nan' not in md.lower().replace('nanmean', '')
    assert "> The paper's claim: VS beats one-hot." in md
    assert '](../../figures/smoke/vs_table13.png)' in md and '](notebooks/vs_table13.ipynb)' in md
    assert '3 trained runs' in md and '1.2 min' in md


def test_dest_and_bad_input(results, tmp_path):
    paths = write_report(results, dest=tmp_path / 'elsewhere')
    assert paths['html'].parent == tmp_path / 'elsewhere'
    assert 'href="../results/smoke/notebooks/vs_table13.ipynb"' in paths['html'].read_text()
    with pytest.raises(ValueError, match='out_dir must be a results folder'):
        write_report(tmp_path / 'nothing')


class _Page(HTMLParser):
    "What the rendered DOM shows: headings, table cells, images' loaded widths (marked by the page's script)."
    def __init__(self):
        super().__init__()
        self.h3, self.cells, self.imgs, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == 'img':
            self.imgs.append(dict(attrs).get('data-natural-width'))
        if tag in ('h3', 'td', 'th'):
            self._in = tag
            (self.h3 if tag == 'h3' else self.cells).append('')

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            (self.h3 if self._in == 'h3' else self.cells)[-1] += data


MARK = ('<script>window.addEventListener("load", () => { for (const i of document.images) '
        'i.setAttribute("data-natural-width", i.naturalWidth); document.body.setAttribute("data-loaded", "1"); });'
        '</script></body>')


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (.ci/run installs it: apt-get install chromium)')
def test_page_in_a_browser(results, tmp_path):
    page = write_report(results)['html']
    probe = page.with_name('probe.html')   # the same page plus a script that marks each image's loaded width
    probe.write_text(page.read_text().replace('</body>', MARK))
    args = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
            '--virtual-time-budget=5000']
    dom = subprocess.run(args + ['--dump-dom', probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'data-loaded="1"' in dom, dom[:500]
    seen = _Page()
    seen.feed(dom)
    for name, title in [('vs_table13', 'VS paper, Table 13'), ('vs_table13_claims', 'Best alpha'),
                        ('theory_checks', 'Numerical checks'), ('theory_checks_tally', 'Verdicts per paper'),
                        ('stray_table', 'A table of no registered experiment')]:
        assert any(title in h and name in h for h in seen.h3), (name, seen.h3)
    assert seen.imgs and all(w is not None and int(w) > 0 for w in seen.imgs), seen.imgs
    cells = [c.strip().lower() for c in seen.cells]
    assert cells and 'nan' not in cells and 'paper_accuracy' not in cells
    assert '92.10 ± 0.30' in cells
    shot = tmp_path / 'shot.png'
    subprocess.run(args + ['--window-size=1000,1400', f'--screenshot={shot}', page.as_uri()], capture_output=True,
                   timeout=120)
    from PIL import Image
    im = Image.open(shot).convert('L')
    lo, hi = im.getextrema()
    assert hi - lo > 100   # not a blank page
