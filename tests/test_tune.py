"Tests of robust_labels.tune (and the study it runs on): spaces, bad input before training, resume after SIGKILL, two workers."
import json, os, signal, subprocess, sys, textwrap, time

import optuna
import pytest
from hypothesis import given, settings, strategies as st
from optuna.trial import TrialState

import robust_labels.setup as rsetup
import robust_labels.study as rs
import robust_labels.tune as rt
from robust_labels.config import RunConfig
from robust_labels.study import default_study_name, open_study
from robust_labels.tune import best_config, best_record, search_space, tune, tuning_space


def study_config(space=None, **kw):
    "A study's configuration as tune used to default it (SPIDER labels, augmented validation)."
    return RunConfig(**{'labels': 'spider', 'val': 'augmented', **kw}), space


def name_of(config):
    cfg, space = config
    return default_study_name(cfg, tuning_space(cfg, space))

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
DEADLINE = 300   # seconds: generous, for a loaded 2-core machine; no assertion depends on speed

# A worker process as a user would start one: `tune` on a shared journal file. With `go`, it first signals that it
# is ready and waits for the file `go`, so that two workers start their studies together.
WORKER = textwrap.dedent('''
    import json, pathlib, sys, time, torch
    torch.set_num_threads(1)
    from robust_labels.config import RunConfig
    from robust_labels.tune import tune
    a = json.loads(sys.argv[1]); go, ready = a.pop('go', None), a.pop('ready', None)
    if go:
        pathlib.Path(ready).touch()
        while not pathlib.Path(go).exists(): time.sleep(0.02)
    tune(RunConfig(**{'labels': 'spider', 'val': 'augmented', **a.pop('config')}), progress=False, **a)
''')


def tune_(config, *args, **kwargs):
    "`tune` of a `study_config(...)` pair."
    cfg, space = config
    return tune(cfg, *args, space=space, **kwargs)


def start_worker(**kwargs):
    return subprocess.Popen([sys.executable, '-c', WORKER, json.dumps(kwargs)], env=ENV)


def journal_trials(path, name):
    "The trials of study `name` in journal `path`, read as another process would read them."
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if name not in optuna.study.get_all_study_names(storage): return []
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def wait_for(cond, procs=(), what=''):
    t0 = time.monotonic()
    while not cond():
        for p in procs: assert p.poll() in (None, 0), f"a worker failed (exit code {p.poll()}) while waiting for {what}"
        assert time.monotonic() - t0 < DEADLINE, f"timed out waiting for {what}"
        time.sleep(0.03)


@pytest.fixture
def no_training(monkeypatch):
    "Fail the test if anything starts training."
    def boom(*a, **k): raise AssertionError("training started")
    monkeypatch.setattr(rsetup, 'fit', boom)


# --- search spaces --------------------------------------------------------------------------------------------------

def test_paper_spaces():
    ft_cifar, tiny = search_space('spider-cifar', 'spider', 10), search_space('spider-tinyimagenet', 'spider', 200)
    assert ft_cifar == {'tau': (0.0, 20.0), 'xi': (0.0, 0.9)}
    assert tiny['tau'] == (0.0, 30.0) and tiny['xi'] == (0.0, 1 - 1 / 200)
    assert search_space('vs-alpha', 'vs', 100) == {'alpha': [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], 'num_virtual': 100}
    assert search_space('vs-v-cifar100', 'vs', 100) == {'alpha': 0.8, 'num_virtual': [10, 50, 100, 150, 200]}
    assert tuning_space(RunConfig(dataset='cifar100', labels='spider'))['xi'] == (0.0, 0.99)


@settings(max_examples=50, deadline=None)
@given(lo=st.floats(0, 30), hi=st.floats(0, 30), c=st.integers(2, 200))
def test_ranges_are_accepted_iff_nonempty(lo, hi, c):
    space = {'tau': (lo, hi), 'xi': (0, '1-1/c')}
    if lo < hi: assert search_space(space, 'spider', c)['tau'] == (lo, hi)
    else:
        with pytest.raises(ValueError, match='empty or inverted'): search_space(space, 'spider', c)


# --- bad input: a clear error before any training ---------------------------------------------------------------------

@pytest.mark.parametrize('space, message', [
    ({'tau': (5.0, 1.0), 'xi': 0.1}, 'empty or inverted'),
    ({'tau': (1.0, 1.0), 'xi': 0.1}, 'empty or inverted'),
    ({'tau': (-1.0, 1.0), 'xi': 0.1}, 'tau must be in'),
    ({'tau': (0.0, 3.0), 'xi': (0.0, 0.95)}, 'xi must be in [0.0, 0.9]'),
    ({'tau': [], 'xi': 0.1}, 'at least one value'),
    ({'tau': (0.0, 3.0), 'xi': 0.1, 'alpha': 0.2}, "that 'spider' labels do not take"),
    ({'tau': (0.0, 3.0)}, "must give 'xi'"),
    ({'tau': 1.0, 'xi': 0.1}, 'at least one range or grid'),
    ('vs-alpha', "is for 'vs' labels"),
])
def test_bad_spaces(space, message, no_training):
    with pytest.raises(ValueError) as e: tuning_space(*study_config(space=space))
    assert message in str(e.value)


@pytest.mark.parametrize('n', [0, -3])
def test_bad_n_trials(n, tmp_path, no_training):
    with pytest.raises(ValueError, match=r'n_trials must be an integer in \[1, inf\)'): tune_(study_config(), n, storage=tmp_path/'s.journal')
    with pytest.raises(TypeError, match='n_trials must be an integer'): tune_(study_config(), 2.0, storage=tmp_path/'s.journal')
    with pytest.raises(ValueError, match='at most 9'): tune_(study_config(labels='vs', space='vs-alpha'), 10, storage=tmp_path/'s.journal')
    assert not (tmp_path/'s.journal').exists()


@pytest.mark.parametrize('url', ['postgresql://alice:pa55word@127.0.0.1:9/studies', 'mysql://alice:pa55word@127.0.0.1:9/db',
                                 'sqlite://alice:pa55word@/x.db', 'nosuchdb://alice:pa55word@host/db'])
def test_unreachable_storage_is_redacted(url, no_training):
    with pytest.raises(ValueError) as e: tune_(study_config(), 2, storage=url)
    assert 'pa55word' not in str(e.value) and 'unreachable' in str(e.value) and 'alice:***@' in str(e.value)


def test_missing_sqlite_folder(tmp_path, no_training):
    with pytest.raises(ValueError, match='unreachable'): tune_(study_config(), 2, storage=f'sqlite:///{tmp_path}/no/such/s.db')


def test_study_with_another_space_is_refused(tmp_path, no_training):
    path, a = tmp_path/'s.journal', study_config(epochs=2)
    open_study(a[0], tuning_space(*a), path, 'mine')
    with pytest.raises(ValueError, match='different search space'):
        tune_(study_config(epochs=2, space={'tau': (0.0, 1.0), 'xi': (0.0, 0.5)}), 3, storage=path, study_name='mine')
    with pytest.raises(ValueError, match='different configuration: augment'):
        tune_(study_config(epochs=2, augment='none'), 3, storage=path, study_name='mine')
    other = optuna.create_study(storage=rs.open_storage(path), study_name='plain', direction='maximize')
    other.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(ValueError, match='did not make'): tune_(a, 3, storage=path, study_name='plain')
    assert len(journal_trials(path, 'mine')) == 0


def test_workers_need_a_shared_storage(no_training):
    with pytest.raises(ValueError, match='other processes can open'):
        tune_(study_config(), 2, storage=optuna.storages.InMemoryStorage(), workers=2)


# --- a small study in this process --------------------------------------------------------------------------------------

def test_small_study_best_and_export(tmp_path):
    url = f'sqlite:///{tmp_path}/studies.db'
    study = tune_(study_config(epochs=2), 3, storage=url, pruner='none', progress=False)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    best = best_config(study)
    assert set(best) == {'tau', 'xi'} and all(type(v) is float for v in best.values())
    assert 0 <= best['tau'] <= 3 and 0 <= best['xi'] <= 0.9
    assert best == {k: study.best_trial.params[k] for k in best}
    rec = best_record(study)
    text = json.dumps(rec)
    assert json.loads(text)['params'] == best and rec['best_trial'] == study.best_trial.number
    assert str(tmp_path) not in text and 'sqlite' not in text       # the storage is never in the record
    assert rec['pruning'] is None and best_record(study, pruning={'trials': 3})['pruning'] == {'trials': 3}
    assert not list(tmp_path.glob('*.json'))                        # tune writes no files
    again = tune_(study_config(epochs=2), 3, storage=url, pruner='none', progress=False)   # complete: nothing runs
    assert len(again.trials) == 3


def test_surplus_trial_retires_before_training(tmp_path, monkeypatch):
    "A trial that finds n_trials finished-or-running trials ahead of it fails at once, marked surplus, without training."
    cfg, _ = study_config(epochs=1)
    study = open_study(cfg, tuning_space(cfg), tmp_path/'s.journal', 'race')
    for _ in range(2):
        t = study.ask(); t.set_user_attr('worker', rt.worker_info())     # two trials running in a live process
    obj = rt.Objective(cfg, n_trials=2, study_name='race')
    monkeypatch.setattr(rsetup, 'fit', lambda *a, **k: pytest.fail("training started"))
    with rs.quiet_optuna(), pytest.raises(rt._SurplusTrial): study.optimize(obj, n_trials=1)
    last = study.trials[-1]
    assert last.state == TrialState.FAIL and last.user_attrs['surplus'] and not last.params


# --- processes: SIGKILL and two workers ---------------------------------------------------------------------------------

def test_killed_worker_is_failed_retried_and_the_study_completes(tmp_path):
    cfg, n = dict(epochs=4, seed=3), 4
    path, ck, name = tmp_path/'s.journal', tmp_path/'ck', name_of(study_config(**dict(epochs=4, seed=3)))
    p = start_worker(config=cfg, n_trials=n, storage=str(path), pruner='none', checkpoint_dir=str(ck))

    def mid_trial():   # two trials finished, and a third has reported at least one epoch
        ts = journal_trials(path, name)
        return sum(t.state in COUNTED for t in ts) >= 2 and any(t.state == TrialState.RUNNING and t.intermediate_values for t in ts)
    try: wait_for(mid_trial, [p], 'a worker in the middle of its third trial')
    finally:
        p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL

    before = {t.number: (t.state, t.value, t.params, dict(t.intermediate_values)) for t in journal_trials(path, name)
              if t.state in COUNTED}
    dead = [t for t in journal_trials(path, name) if t.state == TrialState.RUNNING]
    assert len(before) >= 2 and len(dead) == 1
    dead = dead[0]

    study = tune_(study_config(**cfg), n, storage=path, pruner='none', checkpoint_dir=ck, progress=False)
    trials = {t.number: t for t in study.trials}
    for num, (state, value, params, steps) in before.items():       # no finished trial lost or changed
        assert (trials[num].state, trials[num].value, trials[num].params, trials[num].intermediate_values) == (state, value, params, steps)
    assert trials[dead.number].state == TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get('failed_trial') == dead.number]
    assert len(retry) == 1 and retry[0].params == dead.params and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs.get('resumed_from', 0) >= max(1, len(dead.intermediate_values))   # continued from its checkpoint
    assert sum(t.state in COUNTED for t in study.trials) == n
    assert not list(ck.rglob('*.pt'))                                # finished trials leave no checkpoints
    assert rs.recover_trials(study) == []


def test_two_workers_share_one_journal(tmp_path):
    cfg, n = dict(epochs=3, seed=5), 8
    path, go, name = tmp_path/'s.journal', tmp_path/'go', name_of(study_config(**dict(epochs=3, seed=5)))
    ready = [tmp_path/f'ready{i}' for i in range(2)]
    ps = [start_worker(config=cfg, n_trials=n, storage=str(path), pruner='none', go=str(go), ready=str(r)) for r in ready]
    try:
        wait_for(lambda: all(r.exists() for r in ready), ps, 'both workers to start')
        go.touch()
        for p in ps: assert p.wait(timeout=DEADLINE) == 0
    finally:
        for p in ps:
            if p.poll() is None: p.kill(); p.wait()
    trials = journal_trials(path, name)
    done = [t for t in trials if t.state in COUNTED]
    assert len(done) == n                                             # exactly the requested number, between them
    assert all(t.user_attrs.get('surplus') for t in trials if t.state not in COUNTED)   # anything else retired unrun
    assert {t.user_attrs['worker']['pid'] for t in done} == {p.pid for p in ps}        # both worked
    assert len({tuple(sorted(t.params.items())) for t in done}) == n  # and never ran the same draw twice


def test_cli_tune_with_two_workers(tmp_path, capsys):
    import warnings
    from robust_labels.cli import main
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        main(['tune', '--trials', '3', '--epochs', '1', '--workers', '2', '--storage', str(tmp_path/'s.journal'),
              '--export', str(tmp_path/'best.json'), '--quiet'])
    assert not [w for w in caught if 'died' in str(w.message)]       # the workers exited cleanly
    out = json.loads(capsys.readouterr().out.split('best trial:')[0])
    assert out['pruning']['trials'] == 3 and set(out['params']) == {'tau', 'xi'}
    assert json.loads((tmp_path/'best.json').read_text())['best_trial'] == out['best_trial']


def test_a_trial_trains_what_fit_config_trains():
    "One wiring: a trial's value is the best validation accuracy a table run of the configuration with its params gets."
    from robust_labels.setup import fit_config
    cfg = RunConfig(labels='spider', val='augmented', epochs=2, seed=2)
    study = optuna.create_study(direction='maximize')
    with rs.quiet_optuna(): study.optimize(rt.Objective(cfg), n_trials=1)
    t = study.trials[0]
    _, res = fit_config(cfg.replace(**t.params), device='cpu')   # as a table run trains it: the same validation set
    assert t.value == res.best_val_acc
    assert [r['val_acc'] for r in res.history] == [t.intermediate_values[e] for e in (1, 2)]


# --- tune --workers N: the parent and its worker processes --------------------------------------------------------------

# The parent as a user would start it: `tune(..., workers=2)`; it prints the study's finished trials when it returns.
PARENT = textwrap.dedent('''
    import json, sys
    from robust_labels.config import RunConfig
    from robust_labels.tune import tune
    a = json.loads(sys.argv[1])
    study = tune(RunConfig(**{'labels': 'spider', 'val': 'augmented', **a.pop('config')}), progress=False, **a)
    print('finished', sum(t.state.name in ('COMPLETE', 'PRUNED') for t in study.trials))
''')


def start_parent(**kwargs):
    return subprocess.Popen([sys.executable, '-c', PARENT, json.dumps(kwargs)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def running_workers(path, name, n):
    "The pids of the workers whose trials run in study `name`, once `n` different ones do (else None)."
    pids = {t.user_attrs['worker']['pid'] for t in journal_trials(path, name)
            if t.state == TrialState.RUNNING and 'worker' in t.user_attrs}
    return pids if len(pids) >= n else None


def alive(pid):
    return rs.process_alive(dict(host=rs.socket.gethostname(), pid=pid, start=None))


def kill_all(pids):
    for pid in pids:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass


def test_workers_die_with_their_parent(tmp_path):
    cfg, path = dict(epochs=50, seed=11), tmp_path/'s.journal'
    name = name_of(study_config(**cfg))
    parent = start_parent(config=cfg, n_trials=20, storage=str(path), pruner='none', workers=2)
    pids = set()
    try:
        wait_for(lambda: running_workers(path, name, 2), [parent], 'both workers to start a trial')
        pids = running_workers(path, name, 2)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        t0 = time.monotonic()
        while any(alive(p) for p in pids) and time.monotonic() - t0 < 30: time.sleep(0.05)
        assert not any(alive(p) for p in pids), "workers outlived their killed parent"
    finally:
        if parent.poll() is None: parent.kill()
        kill_all(pids)


def two_workers_running(tmp_path, seed, n_trials, epochs):
    "A tune parent with 2 workers, both inside a trial: (parent, journal path, study name, worker pids)."
    cfg, path = dict(epochs=epochs, seed=seed), tmp_path/'s.journal'
    name = name_of(study_config(**cfg))
    parent = start_parent(config=cfg, n_trials=n_trials, storage=str(path), pruner='none', workers=2)
    try:
        wait_for(lambda: running_workers(path, name, 2), [parent], 'both workers to start a trial')
    except BaseException:
        parent.kill()
        raise
    return parent, path, name, running_workers(path, name, 2)


def test_a_dead_worker_does_not_fail_a_finished_study(tmp_path):
    "One worker killed mid-trial: the other retries its trial and finishes the study; the parent reports and exits 0."
    n = 3
    parent, path, name, pids = two_workers_running(tmp_path, 12, n, epochs=3)
    try:
        os.kill(min(pids), signal.SIGKILL)
        out, err = parent.communicate(timeout=DEADLINE)
    finally:
        if parent.poll() is None: parent.kill()
        kill_all(pids)
    assert parent.returncode == 0, err
    assert f'finished {n}' in out
    assert '1 of 2 workers' in err and f'{n} of {n} requested trials finished' in err
    done = [t for t in journal_trials(path, name) if t.state in COUNTED]
    assert len(done) == n and any('failed_trial' in t.system_attrs for t in done)   # the dead one's trial, retried


def test_missing_trials_name_the_rerun(tmp_path):
    "Every worker killed: the parent fails with the study's state and the command that resumes it."
    n = 4
    parent, path, name, pids = two_workers_running(tmp_path, 13, n, epochs=50)
    try:
        kill_all(pids)
        out, err = parent.communicate(timeout=DEADLINE)
    finally:
        if parent.poll() is None: parent.kill()
    assert parent.returncode != 0
    last = err.strip().splitlines()[-1]
    assert 'StudyIncomplete' in last and f'0 of {n} requested trials finished' in last
    assert '2 interrupted' in last and 'rerun' in last and name in last


def test_rerun_command_is_the_cli_line(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['/x/bin/robust-labels', 'tune', '--trials', '3', '--study', 'a b',
                                      '--storage', 'postgresql://u:secret1@h/db'])
    cmd = rt._rerun_command('ignored', 'ignored')
    assert cmd == "robust-labels tune --trials 3 --study 'a b' --storage postgresql://u:***@h/db"
    monkeypatch.setattr(sys, 'argv', ['-c'])
    assert rt._rerun_command('s1', '/tmp/s.journal') == "tune(...) again with study_name='s1', storage='/tmp/s.journal'"


def test_tuning_selects_on_the_runs_validation_set(no_training):
    "A study of seed 3 scores its trials on the augmented validation set the table runs select on (drawn with seed 0)."
    cfg = RunConfig(labels='spider', val='augmented', seed=3)
    runs_val = rsetup.validation_set(cfg)                  # what fit_config (the runs) uses
    obj = rt.Objective(cfg)
    assert all((a == b).all() for a, b in zip(obj.val, runs_val))


# --- the tuning stage's exports: read back, checked, provenance ------------------------------------------------------

def export_of(out_dir, config, **params):
    "Write the export of a study of `config` whose only trial found `params`, as the tuning stage does; no training."
    space = tuning_space(config)
    name = f'study-{rt.tuned_name(config)}'
    study = open_study(config, space, storage=optuna.storages.InMemoryStorage(), study_name=name)
    study.enqueue_trial(params)
    trial = study.ask({k: optuna.distributions.FloatDistribution(*space[k]) for k in params})
    study.tell(trial, 80.0)
    path = rt.tuned_path(out_dir, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(best_record(study)))
    return path


def test_provenance_names_the_study_trial_and_export(tmp_path, no_training):
    spider = RunConfig(labels='spider', val='augmented', augment='pixmix')
    export_of(tmp_path, spider, tau=1.25, xi=0.3)
    run = rt.tuned_config(tmp_path, spider.replace(seed=2))
    assert (run.tau, run.xi, run.seed) == (1.25, 0.3, 2)
    want = dict(study='study-spider_digits_cnn_pixmix', trial=0, export='tuned/spider_digits_cnn_pixmix.json')
    assert rt.provenance(tmp_path, run) == want
    assert rt.provenance(str(tmp_path), run.replace(epochs=3)) == want        # a trial budget may differ from the runs'
    assert rt.provenance(tmp_path, run.replace(labels='spider-nols')) == want   # "w/o LS" at SPIDER's (tau, xi)
    assert rt.provenance(tmp_path, run.replace(xi=0.31)) is None                # hand-set values: not from a study
    assert rt.provenance(tmp_path, run.replace(labels='onehot')) is None
    assert rt.provenance(tmp_path, run.replace(augment='augmix')) is None       # no export for that baseline
    assert rt.provenance(tmp_path, run.replace(val='clean')) is None            # selected on another validation set
    assert rt.provenance(tmp_path / 'elsewhere', run) is None


def test_provenance_of_the_schemes_own_studies(tmp_path, no_training):
    nols, ls = (RunConfig(labels=l, val='augmented') for l in ('spider-nols', 'ls'))
    export_of(tmp_path, nols, tau=2.0)
    export_of(tmp_path, ls, alpha=0.25)
    run = rt.tuned_config(tmp_path, nols.replace(xi=0.4))                       # No LS keeps SPIDER's xi, unused
    assert (run.tau, run.xi) == (2.0, 0.4)
    assert rt.provenance(tmp_path, run)['export'] == 'tuned/spider-nols_digits_cnn_standard.json'
    assert rt.provenance(tmp_path, rt.tuned_config(tmp_path, ls))['study'] == 'study-ls_digits_cnn_standard'


def test_an_export_of_another_study_is_refused(tmp_path, no_training):
    cnn = RunConfig(labels='spider', val='augmented')
    path = export_of(tmp_path, cnn, tau=1.0, xi=0.2)
    wrn = cnn.replace(model='wrn-40-1')
    rt.tuned_path(tmp_path, wrn).write_text(path.read_text())                  # a cnn study under a wrn-40-1 name
    with pytest.raises(ValueError, match=r"another configuration: model 'cnn' \(wanted 'wrn-40-1'\)"):
        rt.read_tuned(tmp_path, wrn)
    with pytest.raises(ValueError, match='search space'):
        rt.read_tuned(tmp_path, cnn, space={'tau': (0.0, 1.5), 'xi': (0.0, 0.9)})
    with pytest.raises(FileNotFoundError, match=r"study 'spider_digits_cnn_augmix'.*--experiments spider_tuning"):
        rt.read_tuned(tmp_path, cnn.replace(augment='augmix'))
    rt.tuned_path(tmp_path, cnn).write_text('{"params": {}}')
    with pytest.raises(ValueError, match='not a study export'):
        rt.read_tuned(tmp_path, cnn)
    assert rt.provenance(tmp_path, cnn.replace(tau=1.0, xi=0.2)) is None       # a broken export is no provenance
