"Tests of robust_labels.cli: flags generated from RunConfig, help, one-line errors, reproduce, runs, data."
import dataclasses, json, subprocess, sys

import pandas as pd
import pytest

import robust_labels
from robust_labels import cli
from robust_labels.cli import build_parser, main
from robust_labels.config import RunConfig


def fails(argv, capsys) -> tuple:
    "The exit status and stderr of `main(argv)`."
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def test_cli_train_and_errors(tmp_path, capsys):
    main(['train', '--labels', 'spider', '--tau', '1.0', '--xi', '0.3', '--epochs', '1', '--out', str(tmp_path),
          '--quiet'])
    out = capsys.readouterr().out
    assert json.loads(out.split('result:')[0])['accuracy'] >= 0
    assert len(list((tmp_path / 'runs').glob('*.json'))) == 1
    code, err = fails(['train', '--labels', 'spider', '--tau', '-1', '--out', str(tmp_path), '--quiet'], capsys)
    assert code == 2 and 'tau' in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    code, err = fails(['train', '--labels', 'mixup'], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "invalid choice: 'mixup'" in err
    main(['runs', '--out', str(tmp_path)])                       # the run, listed by its settings
    listed = capsys.readouterr().out
    assert 'dataset=digits  model=cnn  labels=spider' in listed and 'tau=1.0 xi=0.3' in listed and 'seed=0' in listed
    assert 'accuracy' in listed
    next((tmp_path / 'runs').glob('*.json')).write_text('{')   # a corrupt record is named, not a traceback
    main(['runs', '--out', str(tmp_path)])
    assert 'unreadable (JSONDecodeError): delete it to rerun the run' in capsys.readouterr().out


def test_train_has_a_flag_per_field_and_the_same_run_id():
    "Every RunConfig field is a flag (the old hand-written ones keep their names); the flags make the same run_id."
    argv = ['train', '--dataset', 'digits', '--labels', 'spider', '--tau', '1.0', '--xi', '0.3', '--epochs', '5']
    a = build_parser().parse_args(argv)
    cfg = RunConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(RunConfig)})
    assert cfg.run_id == RunConfig(labels='spider', tau=1.0, xi=0.3, epochs=5).run_id
    assert RunConfig(**{f.name: getattr(build_parser().parse_args(['train']), f.name)
                        for f in dataclasses.fields(RunConfig)}) == RunConfig()
    helps = build_parser()._subparsers._group_actions[0].choices['train'].format_help()
    for f in dataclasses.fields(RunConfig): assert '--' + f.name.replace('_', '-') in helps
    b = build_parser().parse_args(['train', '--regime', 'kd', '--teacher', 'abc', '--val', 'augmented',
                                   '--num-virtual', '3', '--batch-size', '8', '--weight-decay', '0.0'])
    got = (b.regime, b.teacher, b.val, b.num_virtual, b.batch_size, b.weight_decay)
    assert got == ('kd', 'abc', 'augmented', 3, 8, 0.0)


def test_tune_keeps_its_flags():
    a = build_parser().parse_args(['tune', '--dataset', 'digits', '--labels', 'vs', '--space', 'vs-alpha',
                                   '--validation', 'clean', '--batch-size', '4', '--trials', '3', '--workers', '2',
                                   '--max-retry', '1', '--export', 'x.json', '--pruner', 'none'])
    assert (a.labels, a.space, a.validation, a.batch_size, a.trials, a.workers, a.max_retry, a.export) == \
           ('vs', 'vs-alpha', 'clean', 4, 3, 2, 1, 'x.json')
    assert build_parser().parse_args(['tune']).labels == 'spider'
    with pytest.raises(SystemExit):
        build_parser().parse_args(['tune', '--labels', 'onehot'])


def actions(parser, command=''):
    "Every (command, action) of `parser` and its subcommands."
    for act in parser._actions:
        if act.__class__.__name__ == '_SubParsersAction':
            for name, p in act.choices.items(): yield from actions(p, f'{command} {name}')
        else: yield command, act


def test_help_documents_every_flag_with_defaults_and_version(capsys):
    assert [(c, a.dest) for c, a in actions(build_parser()) if not a.help] == []
    from robust_labels.registry import PRESETS
    assert cli._PRESETS == PRESETS
    with pytest.raises(SystemExit):
        main(['reproduce', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert '(default: smoke)' in text and '--continue-on-error' in text and '--dry-run' in text and '--set' in text
    with pytest.raises(SystemExit) as e:
        main(['--version'])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f'robust-labels {robust_labels.__version__}'


@pytest.mark.parametrize('argv', [['--help'], ['reproduce', '--help'], ['list', '--help'], ['data', 'list', '--help']])
def test_help_imports_no_torch(argv):
    "The parser of every command but train/tune is built without the training stack (python -X importtime)."
    r = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'robust_labels.cli', *argv], capture_output=True,
                       text=True)
    assert r.returncode == 0 and 'usage: robust-labels' in r.stdout
    imported = [line.split('|')[-1].strip() for line in r.stderr.splitlines() if '|' in line]
    assert 'torch' not in imported and 'robust_labels.core' not in imported and 'papermill' not in imported


def test_every_failure_is_one_line_and_nonzero(tmp_path, capsys, monkeypatch):
    (tmp_path / 'afile').write_text('x')
    cases = [(['reproduce', '--out', str(tmp_path / 'afile')], 'is a file, not a folder'),
             (['reproduce', '--shard', '2/2'], "shard must be 'i/n'"),
             (['reproduce', '--shard', 'x'], "shard must be 'i/n'"),
             (['reproduce', '--set', 'epochz=1', '--experiments', 'vs_table13'], "--set ['epochz']"),
             (['reproduce', '--set', 'epochs=x', '--experiments', 'vs_table13'], 'epochs must be int'),
             (['reproduce', '--set', 'epochs'], '--set must be KEY=VALUE'),
             (['reproduce', '--experiments'], 'expected at least one argument'),
             (['reproduce', '--experiments', 'nope'], 'experiments must be one of'),
             (['reproduce', '--preset', 'huge'], "invalid choice: 'huge'"),
             (['runs', '--out', str(tmp_path / 'nothing')], 'is not a folder'),
             (['data', 'check', 'imagenet', '--root', str(tmp_path)], 'imagenet'),
             (['nope'], "invalid choice: 'nope'")]
    for argv, says in cases:
        code, err = fails(argv, capsys)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert 'Traceback' not in err
    assert not (tmp_path / 'afile').is_dir()
    def boom(a): raise RuntimeError('disk on fire\nsecond line')
    monkeypatch.setitem(cli._COMMANDS, 'list', boom)
    code, err = fails(['list'], capsys)
    assert code == 1 and err.strip() == ('robust-labels list: error: RuntimeError: disk on fire '
                                         '(--debug shows the traceback)')
    with pytest.raises(RuntimeError, match='disk on fire'):
        main(['--debug', 'list'])


def test_reproduce_dry_run_lists_parameters_results_and_estimate(tmp_path, capsys):
    (tmp_path / 'paper' / 'runs').mkdir(parents=True)
    (tmp_path / 'paper' / 'runs' / 'x.json').write_text('{}')
    main(['reproduce', '--preset', 'paper', '--dry-run', '--experiments', 'vs_table13', 'spider_table1',
          '--set', 'epochs=1', '--out', str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith('vs_table13: setups=') and lines[1].startswith('spider_table1: ')
    assert all('epochs=1' in l and 'seeds=[0, 1, 2]' in l for l in lines)
    assert all('result files already in the output folder: 1' in l and 'estimate: no estimate yet' in l for l in lines)
    assert not (tmp_path / 'paper' / 'notebooks').exists()


def test_reproduce_preflight_exits_2_with_the_fetch_commands(tmp_path, capsys, monkeypatch):
    from robust_labels import catalog
    monkeypatch.setattr(catalog, 'needed', lambda params: ['cifar10'])
    monkeypatch.setattr(catalog, 'status', lambda names, root=None: pd.DataFrame(dict(
        name=names, kind='dataset', path='/d', present=False, size_mb=0.0, how='robust-labels data download cifar10')))
    code, err = fails(['reproduce', '--preset', 'paper', '--experiments', 'vs_table13', '--out', str(tmp_path)], capsys)
    assert code == 2 and 'cifar10 (looked for in /d): robust-labels data download cifar10' in err
    assert not (tmp_path / 'paper' / 'notebooks').exists()


def test_data_commands(tmp_path, capsys, monkeypatch):
    from robust_labels import catalog
    main(['data', 'list', '--preset', 'smoke', '--experiments', 'vs_table13'])
    out = capsys.readouterr().out
    assert 'digits' in out and 'present' in out
    main(['data', 'list', '--preset', 'paper', '--experiments', 'vs_table2'])
    assert 'robust-labels data download cifar10' in capsys.readouterr().out
    got = []
    monkeypatch.setattr(catalog, 'download', lambda names, root=None, progress=True: got.append((names, root)))
    main(['data', 'download', 'cifar10', 'svhn', '--root', str(tmp_path), '--quiet'])
    assert got == [(['cifar10', 'svhn'], str(tmp_path))] and 'cifar10' in capsys.readouterr().out
    monkeypatch.setattr(catalog, 'check', lambda name, root: None)
    main(['data', 'check', 'imagenet', '--root', str(tmp_path)])
    assert 'has the expected layout' in capsys.readouterr().out


def test_reproduce_from_the_cli_writes_under_the_cwd(tmp_path, capfd, monkeypatch):
    "One experiment shrunk with --set, default --out: ./results; [1/1] line, a line per experiment, the report line."
    monkeypatch.chdir(tmp_path)
    main(['reproduce', '--experiments', 'vs_table13', '--set', 'setups=[["digits", "cnn"]]', '--set', 'epochs=1',
          '--set', 'seeds=[0]', '--set', 'alphas=[0.5]', '--quiet'])
    out = capfd.readouterr().out
    assert '[1/1] vs_table13 (vs_table13.ipynb): no estimate yet' in out
    assert 'vs_table13: claims ' in out and 'report.html' in out
    assert (tmp_path / 'results' / 'smoke' / 'tables' / 'vs_table13.csv').exists()
    assert (tmp_path / 'results' / 'smoke' / 'figures' / 'vs_table13.png').exists()


class _Writer:
    "Stands in for torch.utils.tensorboard.SummaryWriter; keeps every writer made."
    made = []
    def __init__(self, logdir):
        self.logdir, self.scalars, self.closed = logdir, [], False
        _Writer.made.append(self)
    def add_scalar(self, tag, value, step): self.scalars.append((tag, value, step))
    def flush(self): pass
    def close(self): self.closed = True


def test_train_log_tensorboard(tmp_path, capsys, monkeypatch):
    "`train --log tensorboard` writes each epoch's scalars; without tensorboard it stops first, naming the pip install."
    import types
    argv = ['train', '--epochs', '2', '--out', str(tmp_path), '--quiet', '--log', 'tensorboard']
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    code, err = fails(argv, capsys)
    assert code != 0 and 'pip install tensorboard' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'runs').exists()                      # stopped before training
    code, err = fails(['train', '--log-dir', str(tmp_path / 'x'), '--out', str(tmp_path)], capsys)
    assert code == 2 and '--log-dir needs --log tensorboard' in err
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=_Writer))
    _Writer.made.clear()
    main(argv)
    out = capsys.readouterr().out
    w, = _Writer.made
    rec = json.loads(next((tmp_path / 'runs').glob('*.json')).read_text())
    assert w.closed and f"tensorboard: {w.logdir}" in out
    assert w.logdir == str(tmp_path / 'tensorboard' / rec['run_id'])
    want = {(k, e) for e in (1, 2) for k in ('train_loss', 'val_acc', 'lr', 'seconds')}
    assert {(t, s) for t, _, s in w.scalars} == want
    main(argv + ['--log-dir', str(tmp_path / 'again')])          # a run already trained: its recorded history
    w2 = _Writer.made[-1]
    assert w2.logdir == str(tmp_path / 'again') and len(w2.scalars) == len(w.scalars)
