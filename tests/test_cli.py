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
    head, row = capsys.readouterr().out.splitlines()[:2]
    assert head.split()[:6] == ['run_id', 'dataset', 'model', 'labels', 'params', 'regime'] and 'accuracy%' in head
    assert row.split()[1:6] == ['digits', 'cnn', 'spider', 'tau=1.0', 'xi=0.3']
    next((tmp_path / 'runs').glob('*.json')).write_text('{')   # a corrupt record is named, not a traceback
    main(['runs', '--out', str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith('skipped: result file ') and 'is not valid JSON' in out and 'delete it to rerun the run' in out


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


HELP_ARGVS = [['--help'], ['train', '--help'], ['tune', '--help'], ['reproduce', '--help'], ['list', '--help'],
              ['runs', '--help'], ['report', '--help'], ['data', '--help'], ['data', 'list', '--help'],
              ['data', 'download', '--help'], ['data', 'check', '--help'], ['--version']]
HELP_PROBE = '''import json, sys, time
t = time.perf_counter()
from robust_labels.cli import main
try: main(sys.argv[1:])
except SystemExit as e: code = e.code
seconds = time.perf_counter() - t
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optuna', 'papermill', 'numpy', 'pandas'))
ours = sorted(m for m in sys.modules if m.startswith('robust_labels'))
print(json.dumps(dict(code=code, heavy=heavy, ours=ours, seconds=seconds)), file=sys.stderr)
'''


def test_every_command_is_registered_for_the_help_checks():
    "HELP_ARGVS holds every command and data subcommand, so a new one is checked for a torch-free --help."
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == '_SubParsersAction')
    assert {v[0] for v in HELP_ARGVS if len(v) == 2} == set(sub.choices)
    data = next(a for a in sub.choices['data']._actions if a.__class__.__name__ == '_SubParsersAction')
    assert {v[1] for v in HELP_ARGVS if v[0] == 'data' and len(v) == 3} == set(data.choices)


@pytest.mark.parametrize('argv', HELP_ARGVS, ids=' '.join)
def test_help_imports_no_torch(argv):
    "`--help` of every command (and `--version`) imports neither torch, Optuna, papermill, numpy nor pandas."
    r = subprocess.run([sys.executable, '-c', HELP_PROBE, *argv], capture_output=True, text=True)
    probe = json.loads(r.stderr.strip().splitlines()[-1])
    assert probe['code'] == 0 and r.stdout.startswith('usage: robust-labels' if '--help' in argv else 'robust-labels ')
    assert probe['heavy'] == [], probe['heavy']
    assert set(probe['ours']) <= {'robust_labels', 'robust_labels.cli', 'robust_labels.config'}, probe['ours']
    print(f"{' '.join(argv)}: {1000 * probe['seconds']:.0f} ms to import the command line and answer")   # measured


def test_help_shows_every_default():
    "Each flag's help shows its default, or says what leaving it out does (a default of None)."
    missing = []
    for command, act in actions(build_parser()):
        if not act.option_strings or act.required or act.__class__.__name__ in ('_HelpAction', '_VersionAction'):
            continue
        shown = cli.HelpFormatter('x')._get_help_string(act) % dict(default=act.default)
        if 'default' not in shown and 'None' not in shown: missing.append((command, act.option_strings[0], shown))
    assert missing == []
    p = next(a for a in build_parser()._actions if a.__class__.__name__ == '_SubParsersAction').choices['tune']
    text = ' '.join(p.format_help().split())
    assert '(default: spider)' in text and '(default: median)' in text and '(default: 30)' in text


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


def test_reproduce_dry_run_lists_runs_which_exist_and_the_gpu_estimate(tmp_path, capsys):
    gpu = tmp_path / 'gpu.json'
    gpu.write_text(json.dumps(dict(device='Test GPU', models={'cnn@8': dict(images_per_second=1000.0)})))
    main(['reproduce', '--dry-run', '--experiments', 'vs_table13', 'theory_checks', '--set', 'epochs=1',
          '--set', 'alphas=[0.5]', '--set', 'seeds=[0]', '--out', str(tmp_path), '--gpu-costs', str(gpu)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith('vs_table13: 3 run(s), 0 already in the output folder; estimate: ')
    assert 'GPU-hours on Test GPU' in lines[0]
    assert [l.split(' (run ')[0] for l in lines[1:4]] == [f'  digits cnn labels={l} regime=standard epochs=1 seed=0'
                                                         for l in ('onehot', 'ls', 'vs')]
    assert all(l.endswith(': to train') for l in lines[1:4])
    assert lines[-1].startswith('theory_checks: trains no runs')
    assert not (tmp_path / 'smoke').exists()
    code, err = fails(['reproduce', '--dry-run', '--experiments', 'vs_table13', '--gpu-costs', str(tmp_path / 'no')],
                      capsys)
    assert code == 2 and 'does not exist' in err


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


def _write_record(folder, experiment, accuracy=None, **config):
    "A result record as runs.train_run writes it (no weights: listing needs none)."
    cfg = RunConfig(**config)
    rec = dict(run_id=cfg.run_id, config=dataclasses.asdict(cfg), metrics={} if accuracy is None else
               dict(accuracy=accuracy), finished='2026-01-02T03:04:05+00:00', experiment=experiment)
    (folder / 'runs').mkdir(parents=True, exist_ok=True)
    (folder / 'runs' / f'{cfg.run_id}.json').write_text(json.dumps(rec))
    return cfg


def test_runs_lists_and_selects_by_experiment_and_fields(tmp_path, capsys):
    "`runs` lists readable fields; --experiment and FIELD=VALUE select like setup.find_runs; folders below --out."
    smoke = tmp_path / 'smoke'
    a = _write_record(smoke, 'spider_table1', 91.25, labels='spider', tau=1.0, xi=0.3)
    b = _write_record(smoke, ['spider_table1', 'spider_table2'], None, labels='spider', tau=1.0, xi=0.3, seed=1)
    c = _write_record(tmp_path / 'paper', 'vs_table13', 80.0, labels='vs', alpha=0.5, num_virtual=10, epochs=3)
    main(['runs', '--out', str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['folder', 'run_id', 'experiment', 'dataset', 'model', 'labels', 'params', 'regime',
                                'augment', 'recipe', 'epochs', 'seed', 'accuracy%', 'finished']
    assert [l.split()[:3] for l in lines[1:4]] == [['paper', c.run_id, 'vs_table13'], ['smoke', a.run_id, 'spider_table1'],
                                                   ['smoke', b.run_id, 'spider_table1,spider_table2']]
    assert 'alpha=0.5 num_virtual=10' in lines[1] and ' 80.0 ' in lines[1] and '2026-01-02 03:04' in lines[1]
    assert lines[4].startswith('3 run(s)')
    main(['runs', '--out', str(smoke), '--experiment', 'spider_table2'])
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines[1:-1]] == [b.run_id] and 'folder' not in lines[0]
    main(['runs', '--out', str(tmp_path), 'labels=spider', 'seed=0', 'tau=1'])
    assert [l.split()[1] for l in capsys.readouterr().out.splitlines()[1:-1]] == [a.run_id]
    main(['runs', '--out', str(smoke), '--experiment', 'vs_table13'])
    assert capsys.readouterr().out.strip().endswith('match experiment=vs_table13')
    for argv, says in ((['labels'], "'labels' is not FIELD=VALUE"), (['seed=x'], 'seed takes a int'),
                       (['taux=1'], 'FIELD one of dataset')):
        code, err = fails(['runs', '--out', str(tmp_path), *argv], capsys)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_reproduce_executor_flags_are_checked_before_anything_runs(tmp_path, capsys):
    pytest.importorskip('ray')
    code, err = fails(['reproduce', '--experiments', 'vs_table13', '--executor', 'ray', '--address', '127.0.0.1:1',
                       '--out', str(tmp_path)], capsys)
    assert code == 2 and 'address 127.0.0.1:1: no Ray cluster answers there' in err
    code, err = fails(['reproduce', '--experiments', 'vs_table13', '--gpus-per-run', '1', '--out', str(tmp_path)],
                      capsys)
    assert code == 2 and "need executor='ray'" in err
    assert not (tmp_path / 'smoke' / 'notebooks').exists()
