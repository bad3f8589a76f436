"Tests of robust_labels.cli: `train` flags generated from RunConfig, errors, the README's command."
import dataclasses, json

import pytest

from robust_labels.cli import build_parser, main
from robust_labels.config import RunConfig


def test_cli_train_and_errors(tmp_path, capsys):
    main(['train', '--labels', 'spider', '--tau', '1.0', '--xi', '0.3', '--epochs', '1', '--out', str(tmp_path),
          '--quiet'])
    out = capsys.readouterr().out
    assert json.loads(out.split('result:')[0])['accuracy'] >= 0
    assert len(list((tmp_path / 'runs').glob('*.json'))) == 1
    with pytest.raises(SystemExit) as e:
        main(['train', '--labels', 'spider', '--tau', '-1', '--out', str(tmp_path), '--quiet'])
    assert e.value.code == 2 and 'tau must be in [0, inf)' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['train', '--labels', 'mixup'])


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
