"""Wall time of `reproduce` with the local executor against Ray with single-thread workers, on the smoke preset.

The local executor trains each notebook's runs one after another in its kernel (one thread for smoke). The Ray
executor plans each stage's runs, trains them as Ray tasks of one CPU each on a local cluster of `--workers` CPUs,
then executes the notebooks, which find every record. Both write into their own fresh output folder; the records of
the two are compared (same run_ids, same metrics). Goal (issue 11): Ray at least 1.6x faster in wall time on the full
smoke preset with two workers on a 2-core machine. The load average is recorded beside the times: on a shared machine
the ratio means little without it.

Run on demand (not by CI):
    python benchmarks/bench_ray.py                                   # vs_table13 and vs_table12, seeds=[0]
    python benchmarks/bench_ray.py --experiments all --set-none      # the full smoke preset (about an hour here)
Writes benchmarks/results/ray.json.
"""
import argparse, datetime, json, os, platform, tempfile, time
from pathlib import Path

from robust_labels.registry import parse_sets, run_batch


def records(out:Path) -> dict:
    "{run_id: metrics} of every result file under `out`."
    return {p.stem: json.loads(p.read_text())['metrics'] for p in sorted((out / 'smoke' / 'runs').glob('*.json'))}


def timed(label:str, **kwargs) -> tuple:
    "Run a batch; its wall seconds, load averages before and after, and statuses."
    before = os.getloadavg()
    t = time.perf_counter()
    res = run_batch('smoke', progress=False, log=lambda *a: None, **kwargs)
    seconds = time.perf_counter() - t
    after = os.getloadavg()
    print(f"{label}: {seconds:.1f} s (load average before {before[0]:.2f}, after {after[0]:.2f}); "
          f"{[(r['name'], r['status']) for r in res]}", flush=True)
    return seconds, dict(before=[round(x, 2) for x in before], after=[round(x, 2) for x in after]), res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--experiments', nargs='+', default=['vs_table13', 'vs_table12'], help="names, or 'all'")
    p.add_argument('--set', action='append', default=None, help="KEY=VALUE overrides (default: seeds=[0])")
    p.add_argument('--set-none', action='store_true', help='no overrides: the preset as it is')
    p.add_argument('--workers', type=int, default=2, help='CPUs of the local Ray cluster (one per run)')
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'ray.json'))
    a = p.parse_args()
    experiments = None if a.experiments == ['all'] else a.experiments
    sets = {} if a.set_none else parse_sets(a.set or ['seeds=[0]'])
    import ray
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local_s, local_load, local_res = timed('local', experiments=experiments, overrides=sets, out_dir=tmp / 'local',
                                               threads=1)
        t = time.perf_counter()
        ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False)
        start_s = time.perf_counter() - t
        try:
            ray_s, ray_load, ray_res = timed('ray', experiments=experiments, overrides=sets, out_dir=tmp / 'ray',
                                             threads=1, executor='ray', cpus_per_run=1)
        finally: ray.shutdown()
        mine, theirs = records(tmp / 'local'), records(tmp / 'ray')
    result = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        experiments=experiments or 'all', overrides=sets, workers=a.workers, cpus=os.cpu_count(),
        machine=platform.processor() or platform.machine(),
        local_seconds=round(local_s, 1), ray_seconds=round(ray_s, 1), ray_cluster_start_seconds=round(start_s, 1),
        speedup=round(local_s / ray_s, 3), speedup_with_cluster_start=round(local_s / (ray_s + start_s), 3),
        goal=1.6, load_average=dict(local=local_load, ray=ray_load),
        runs=len(mine), same_runs=set(mine) == set(theirs), same_metrics=mine == theirs,
        statuses=dict(local=[r['status'] for r in local_res], ray=[r['status'] for r in ray_res]),
        note='measured on a 2-core machine shared with other processes (see load_average); '
             'the full smoke preset measurement is left to the lead' if experiments else '')
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__': main()
