"""Tests of robust_labels.executors and the planned batch: a local Ray cluster the tests start and stop, digits runs."""
import dataclasses, json, os, signal, time

import pytest

from robust_labels.config import RunConfig
from robust_labels.executors import (connect_ray, describe, execute_local, execute_ray, request, run_order, run_task,
                                     shard_of, torchrun_command)
from robust_labels.runs import train_run
from robust_labels.setup import result_path

SAME = ('metrics', 'history', 'best_epoch', 'config', 'run_id')   # what must not depend on where a run trained


def numbers(rec:dict) -> dict:
    "What a record says about the run, without wall-clock times."
    return {k: [{e: v for e, v in h.items() if e != 'seconds'} for h in rec[k]] if k == 'history' else rec[k]
            for k in SAME}


@pytest.fixture(scope='module')
def cluster():
    ray = pytest.importorskip('ray')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def quiet(*a): pass


def test_ray_records_equal_the_local_executors(tmp_path, cluster):
    reqs = [request(RunConfig(epochs=2, seed=s), ['accuracy'], ['t']) for s in (0, 1)]
    local = execute_local(reqs, tmp_path / 'local', threads=1, log=quiet)
    remote = execute_ray(reqs, tmp_path / 'ray', cpus_per_run=1, log=quiet)
    assert set(local) == set(remote) == {r['run_id'] for r in reqs}
    for rid in local:
        assert remote[rid]['status'] == 'ok' and local[rid]['status'] == 'ok'
        assert numbers(remote[rid]['record']) == numbers(local[rid]['record'])
        assert remote[rid]['record']['experiment'] == 't'


def test_a_killed_worker_loses_no_finished_run_and_the_retry_resumes_to_the_same_metrics(tmp_path, cluster):
    slow, quick = RunConfig(epochs=4, batch_size=8), RunConfig(epochs=1, seed=7)
    reference = train_run(slow, tmp_path / 'reference')
    out = tmp_path / 'out'
    train_run(quick, out)
    finished = json.loads(result_path(out, quick).read_text())
    task = cluster.remote(run_task).options(num_cpus=1, max_retries=3)
    ref = task.remote(dataclasses.asdict(slow), str(out), ['accuracy'], [])
    lock, ckdir = out / 'locks' / f'{slow.run_id}.lock', out / 'checkpoints' / slow.run_id
    while not (ckdir.is_dir() and any(ckdir.iterdir())):                     # until an epoch checkpoint is on disk
        assert not cluster.wait([ref], timeout=0.05)[0], f"the run ended before its first checkpoint: {cluster.get(ref)}"
    pid = int(lock.read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)                                            # the worker dies mid-run
    rec = cluster.get(ref)
    assert int(lock.read_text()) != pid                                      # a new worker took the run over
    assert numbers(rec) == numbers(reference)
    assert json.loads(result_path(out, quick).read_text()) == finished       # the finished run is untouched


def test_a_failing_run_names_its_configuration_and_the_others_complete(tmp_path, cluster):
    bad = RunConfig(regime='kd', teacher='0123456789abcdef', epochs=1)
    teacher = RunConfig(epochs=1, seed=3)
    student = RunConfig(regime='kd', teacher=teacher.run_id, epochs=1)
    reqs = [request(bad), request(student), request(teacher), request(RunConfig(epochs=1, seed=4))]
    assert [r['run_id'] for r in run_order(reqs)][:3] == [bad.run_id, teacher.run_id, student.run_id]
    out = execute_ray(reqs, tmp_path, cpus_per_run=1, log=quiet)
    assert out[bad.run_id]['status'] == 'failed'
    assert f"run {describe(dataclasses.asdict(bad))} failed: FileNotFoundError" in out[bad.run_id]['error']
    assert [out[c.run_id]['status'] for c in (teacher, student, RunConfig(epochs=1, seed=4))] == ['ok'] * 3


def test_the_cluster_is_checked_before_anything_runs(tmp_path, cluster):
    with pytest.raises(ValueError, match='no node of the Ray cluster has that many GPUs'):
        connect_ray(gpus_per_run=1)
    assert connect_ray()['gpus_per_run'] == 0 and not connect_ray()['started']


def test_an_unreachable_address_is_a_clear_error_before_anything_runs(tmp_path, cluster):
    from robust_labels.registry import run_batch
    with pytest.raises(ValueError, match='address 127.0.0.1:1: no Ray cluster answers there'):
        run_batch('smoke', ['vs_table13'], out_dir=tmp_path, executor='ray', address='127.0.0.1:1', progress=False,
                  log=quiet)
    assert not (tmp_path / 'smoke').exists()


def test_reproduce_with_ray_plans_trains_then_builds_the_tables(tmp_path, cluster):
    from robust_labels.registry import run_batch
    sets = dict(epochs=1, alphas=[0.5], seeds=[0])
    lines = []
    res = run_batch('smoke', ['vs_table13'], out_dir=tmp_path, overrides=sets, executor='ray', progress=False,
                    log=lines.append)
    assert [r['status'] for r in res] == ['ok'], res
    out = tmp_path / 'smoke'
    assert any(l.startswith('planned vs_table13: 3 run(s)') for l in lines), lines
    recs = [json.loads(p.read_text()) for p in (out / 'runs').glob('*.json')]
    assert len(recs) == 3 and all(r['experiment'] == 'vs_table13' for r in recs)
    assert (out / 'tables' / 'vs_table13.csv').exists()


def test_shards_partition_the_plan_and_torchrun_gets_the_runs_flags():
    reqs = [request(RunConfig(seed=s)) for s in range(8)]
    parts = [shard_of(reqs, f'{i}/2') for i in range(2)]
    assert sorted(r['run_id'] for p in parts for r in p) == sorted(r['run_id'] for r in reqs)
    cmd = torchrun_command(dataclasses.asdict(RunConfig(model='resnet18', dataset='cifar10', epochs=3)), '/o', 2)
    assert cmd[1:6] == ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']
    assert cmd[cmd.index('train') + 1:] == ['--dataset', 'cifar10', '--model', 'resnet18', '--epochs', '3', '--out',
                                           '/o', '--quiet']


def test_dry_run_lists_the_runs_and_which_exist(tmp_path):
    from robust_labels.registry import dry_run
    sets = dict(epochs=1, alphas=[0.5], seeds=[0])
    out = tmp_path / 'smoke'
    train_run(RunConfig(epochs=1), out, evals=['accuracy'])             # vs_table13's one-hot run, trained already
    before = sorted(p.relative_to(out) for p in out.rglob('*'))
    (rows,) = dry_run('smoke', ['vs_table13'], sets, out_dir=tmp_path, gpu_costs_path=None)
    assert [(r['labels'], r['epochs'], r['seed']) for r in rows['runs']] == [('onehot', 1, 0), ('ls', 1, 0), ('vs', 1, 0)]
    assert [r['exists'] for r in rows['runs']] == [True, False, False]
    assert rows['gpu_estimate'].startswith(('no GPU-hour estimate possible', 'estimate: '))
    assert sorted(p.relative_to(out) for p in out.rglob('*')) == before           # nothing written by the dry run


def test_shards_filter_the_plan_then_an_unsharded_batch_builds_the_tables(tmp_path):
    from robust_labels.registry import run_batch
    sets = dict(epochs=1, alphas=[0.5], seeds=[0, 1])
    out = tmp_path / 'smoke'
    trained = []
    for shard in ('0/2', '1/2'):
        res = run_batch('smoke', ['vs_table13'], out_dir=tmp_path, overrides=sets, shard=shard, progress=False,
                        log=quiet)
        assert [r['status'] for r in res] == ['trained'] and not (out / 'tables').exists()
        now = {p.stem for p in (out / 'runs').glob('*.json')}
        assert all(int(rid, 16) % 2 == int(shard[0]) for rid in now - set(trained))   # only this shard's share
        trained = sorted(now)
    assert len(trained) == 6                                                          # the shards cover the plan
    stamps = {rid: json.loads((out / 'runs' / f'{rid}.json').read_text())['finished'] for rid in trained}
    res = run_batch('smoke', ['vs_table13'], out_dir=tmp_path, overrides=sets, progress=False, log=quiet)
    assert [r['status'] for r in res] == ['ok'] and (out / 'tables' / 'vs_table13.csv').exists()
    assert {rid: json.loads((out / 'runs' / f'{rid}.json').read_text())['finished'] for rid in trained} == stamps


def test_a_run_with_two_processes_trains_under_torchrun_then_evaluates_in_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    cfg = RunConfig(epochs=1, batch_size=64)
    rec = run_task(dataclasses.asdict(cfg), tmp_path, ['accuracy'], ['demo'], 'cpu', 1, 2)   # torchrun, 2 ranks (gloo)
    assert rec['experiment'] == 'demo' and 0 <= rec['metrics']['accuracy'] <= 100
    assert json.loads(result_path(tmp_path, cfg).read_text())['evals'] == ['accuracy']
