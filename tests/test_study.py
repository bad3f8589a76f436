"Tests of robust_labels.study: per-trial seeds, redaction, identity of a study, dead workers' trials."
import socket, subprocess, sys

import optuna
import pytest
from optuna.trial import TrialState

import robust_labels.study as rs
from robust_labels.config import RunConfig
from robust_labels.study import default_study_name, open_study, redact_url, study_identity

SPACE = {'tau': (0.0, 3.0), 'xi': (0.0, 0.9)}


def test_sampler_seeds_per_trial():
    "Draws depend on (seed, trial number) only: two samplers agree, and a restarted worker does not replay trial 0."
    def draws(seed, first, n):
        study = optuna.create_study(sampler=rs.make_sampler('tpe', seed=seed), direction='maximize')
        for _ in range(first): study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
        out = []
        for _ in range(n):
            t = study.ask(); x = t.suggest_float('tau', 0, 20); study.tell(t, state=TrialState.FAIL); out.append(x)
        return out
    a, b = draws(0, 0, 4), draws(0, 0, 4)
    assert a == b and len(set(a)) == 4
    assert draws(0, 2, 2) == a[2:]                  # trial 2 draws the same whether or not this process ran 0 and 1
    assert draws(1, 0, 4) != a


def test_redact_url():
    assert redact_url('postgresql+psycopg2://u:p%40ss:w@db:5432/x') == 'postgresql+psycopg2://u:***@db:5432/x'
    assert redact_url('postgresql://db/x?user=u&password=secret') == 'postgresql://db/x?user=u&password=***'
    assert redact_url('/a/journal/file.journal') == '/a/journal/file.journal'


def test_identity_is_the_one_tune_always_stored():
    "Study names (and the identity a study stores) are those ObjectiveConfig gave, so existing journals still open."
    cfg = RunConfig(labels='spider', val='augmented')
    assert default_study_name(cfg, SPACE) == 'spider-digits-cnn-308d2ad46f'
    assert default_study_name(cfg.replace(epochs=2), SPACE) == 'spider-digits-cnn-7f33a0294d'
    ident = study_identity(cfg, SPACE)['config']
    assert set(ident) == {'dataset', 'model', 'labels', 'space', 'augment', 'recipe', 'epochs', 'lr', 'batch_size',
                          'validation', 'seed'}
    assert study_identity(cfg.replace(tau=2.0, xi=0.1), SPACE)['config'] == ident   # trials set these
    assert study_identity(cfg.replace(regime='at'), SPACE)['config']['regime'] == 'at'


def test_recipe_fields_added_later_keep_old_names_and_count_when_set():
    "Recipe fields added after studies were first stored enter the identity only where they are not their defaults."
    import dataclasses
    cfg = RunConfig(labels='spider', val='augmented')
    recipe = study_identity(cfg, SPACE)['recipe']
    assert set(recipe) == {'epochs', 'lr', 'batch_size', 'momentum', 'nesterov', 'weight_decay', 'schedule',
                           'milestones', 'gamma'}
    later = [f for f in dataclasses.fields(cfg.recipe_()) if f.name not in recipe and type(f.default) in (int, float)]
    if not later: pytest.skip('train.Recipe has no numeric field added later')
    import robust_labels.study as module
    changed = dataclasses.replace(cfg.recipe_(), **{later[0].name: 1})
    assert module._recipe_record(changed)[later[0].name] == 1


def test_open_study_refuses_another_configuration(tmp_path):
    cfg = RunConfig(labels='spider', val='augmented', epochs=2)
    open_study(cfg, SPACE, tmp_path / 's.journal', 'mine')
    with pytest.raises(ValueError, match='different configuration: validation'):
        open_study(cfg.replace(val='clean'), SPACE, tmp_path / 's.journal', 'mine')
    with pytest.raises(TypeError, match='config must be a RunConfig'):
        open_study(dict(labels='spider'), SPACE, tmp_path / 's.journal', 'mine')


def test_dead_worker_trial_is_retried_once():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    study = optuna.create_study(direction='maximize')
    t = study.ask()
    t.suggest_float('tau', 0, 3)
    t.set_user_attr('worker', dict(host=socket.gethostname(), pid=p.pid, start=None))
    assert rs.recover_trials(study) == [0]
    assert [u.state for u in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].params == study.trials[0].params and rs.recover_trials(study) == []
    assert rs.retry_trial(study, study.trials[0], max_retry=0) is False


def test_retried_trial_leaves_the_sampled_points_unchanged():
    "A study whose trial 2 dies and is retried samples the same points as an uninterrupted study with the same seed."
    def run(crash_at=None, n=6):
        sampler = rs.make_sampler('tpe', seed=7, n_startup_trials=3)
        study = optuna.create_study(sampler=sampler, direction='maximize')
        while sum(t.state == TrialState.COMPLETE for t in study.trials) < n:
            t = study.ask()
            x, y = t.suggest_float('tau', 0, 3), t.suggest_float('xi', 0, 0.9)
            if t.number == crash_at:                       # the worker dies: FAIL, then a queued retry
                study.tell(t, state=TrialState.FAIL)
                assert rs.retry_trial(study, study.trials[-1])
                continue
            study.tell(t, -(x - 1) ** 2 - (y - 0.3) ** 2)
        return {tuple(sorted(t.params.items())) for t in study.trials if t.state == TrialState.COMPLETE}
    assert run(crash_at=2) == run() and len(run()) == 6


def test_surplus_trials_do_not_shift_the_draws():
    "Trials retired as surplus draw nothing, so later trials draw what they would have drawn without them."
    def run(surplus_at=None, n=5):
        study = optuna.create_study(sampler=rs.make_sampler('random', seed=3), direction='maximize')
        while sum(t.state == TrialState.COMPLETE for t in study.trials) < n:
            t = study.ask()
            if t.number == surplus_at:
                t.set_user_attr('surplus', True)
                study.tell(t, state=TrialState.FAIL)
                continue
            study.tell(t, t.suggest_float('tau', 0, 3))
        return [t.params['tau'] for t in study.trials if t.state == TrialState.COMPLETE]
    assert run(surplus_at=1) == run()


@pytest.mark.parametrize('line', [b'{"op_code": 0, "worker_id": "x", "study_name": "s", "directio\n', b'garbage\n',
                                  b'[1, 2]\n'])
def test_corrupt_journal_line_is_a_clear_error(tmp_path, line):
    path = tmp_path / 's.journal'
    study = open_study(RunConfig(labels='spider', val='augmented'), SPACE, path, 'mine')
    study.enqueue_trial({'tau': 1.0, 'xi': 0.1})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b''.join(lines[:1] + [line] + lines[1:]))       # a damaged line in the middle
    with pytest.raises(ValueError) as e: rs.open_storage(path)
    msg = str(e.value)
    assert str(path) in msg and 'line 2' in msg and 'backup' in msg
    path.write_bytes(b''.join(lines + [line]))                         # or a damaged complete last line
    with pytest.raises(ValueError, match=f'line {len(lines) + 1}'): rs.load_study('mine', path)


def test_torn_last_line_is_still_repaired(tmp_path):
    path = tmp_path / 's.journal'
    open_study(RunConfig(labels='spider', val='augmented'), SPACE, path, 'mine')
    good = path.read_bytes()
    path.write_bytes(good + b'{"op_code": 5, "wor')
    with pytest.warns(UserWarning, match='incomplete line'): rs.load_study('mine', path)
    assert path.read_bytes() == good


def test_studies_of_other_seeds_record_the_validation_draw():
    "Tuning scores on the runs' validation draw (seed 0): a study of another seed never resumes trials scored otherwise."
    cfg = RunConfig(labels='spider', val='augmented')
    assert 'validation_seed' not in study_identity(cfg, SPACE)['config']
    assert 'validation_seed' not in study_identity(cfg.replace(seed=3, val='clean'), SPACE)['config']
    assert study_identity(cfg.replace(seed=3), SPACE)['config']['validation_seed'] == 0
