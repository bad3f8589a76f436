"""Speed of `robust_labels.attacks.pgd` against torchattacks' PGD / PGDL2 on the same model, batch and steps.

Run on demand (not by CI):  python benchmarks/bench_pgd.py [--device cuda] [--batch 128] [--steps 10] [--out PATH]
                            [--models cnn,linear,wrn-16-2,digits-cnn]   (the goal is read on 'cnn')
Prints the median time of each implementation and the median of the per-repetition ratios ours / torchattacks
(goal, issue 11 §3: <= 0.8), measured in the same process with the runs interleaved in alternating order
(ours-theirs, theirs-ours, ...), so that machine load and order effects affect both alike; writes them to
benchmarks/results/pgd.json (or --out).
"""
import argparse, datetime, json, os, platform, statistics, time
from pathlib import Path

import torch
import torch.nn as nn

from robust_labels.attacks import pgd


def cifar_cnn(num_classes=10):
    "A small VGG-style CNN on 3x32x32 inputs: enough work per step that per-call overheads do not dominate."
    def block(i, o): return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(), nn.Linear(128 * 16, num_classes))


def _library(name, **kw):
    from robust_labels.models import create_model
    return lambda: create_model(name, 10, **kw)


# the VGG-style CNN measures the attack as it is used (model-bound; the goal is read on it); the linear model exposes
# per-step overheads; WRN-16-2 and the digits CNN of robust_labels.models are the library's own CIFAR-shaped models
MODELS = {'cnn': cifar_cnn, 'linear': lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)),
          'wrn-16-2': _library('wrn-16-2'), 'digits-cnn': _library('cnn', in_channels=3)}


def timed(fn, device):
    "Seconds one call of `fn` takes (synchronised on CUDA)."
    if device.type == 'cuda': torch.cuda.synchronize(device)
    t = time.perf_counter(); fn()
    if device.type == 'cuda': torch.cuda.synchronize(device)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: leave as is)')
    p.add_argument('--models', default='cnn,linear', help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'pgd.json'), help="JSON record ('' for none)")
    args = p.parse_args()
    try:
        import torchattacks
    except ImportError:
        raise SystemExit('torchattacks is needed for the reference: pip install torchattacks')
    if args.threads: torch.set_num_threads(args.threads)
    names = args.models.split(',')
    if 'cnn' not in names or any(n not in MODELS for n in names):
        raise SystemExit(f"--models must name 'cnn' (the goal's model) and only models from {', '.join(MODELS)}, "
                         f"got {args.models!r}")
    load_before = os.getloadavg() if hasattr(os, 'getloadavg') else None
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    print(f"device {device}, torch {torch.__version__}, torchattacks {torchattacks.__version__}, "
          f"threads {torch.get_num_threads()}, batch {args.batch}, steps {args.steps}, repeats {args.repeats}, "
          f"load average {load_before}")
    print(f"{'model':10} {'norm':5} {'ours (s)':>10} {'torchattacks (s)':>17} {'ratio':>7}")
    ratios, rows = [], []
    for name in names:
        torch.manual_seed(0)
        model = MODELS[name]().to(device).eval()
        for norm, eps, step in (('linf', 8/255, 2/255), ('l2', 0.5, 0.1)):
            ref = (torchattacks.PGD if norm == 'linf' else torchattacks.PGDL2)(model, eps=eps, alpha=step, steps=args.steps)
            ours = lambda: pgd(model, x, y, norm, eps, step, args.steps)
            theirs = lambda: ref(x, y)
            ours(); theirs()                                    # warm-up (allocator, kernels)
            t_ours, t_ref = [], []
            for i in range(args.repeats):   # interleaved, so drifting load hits both; the order alternates, because on
                if i % 2:                   # a shared CPU whichever runs first in a pair was measured 10-20% slower
                    t_ref.append(timed(theirs, device)); t_ours.append(timed(ours, device))
                else: t_ours.append(timed(ours, device)); t_ref.append(timed(theirs, device))
            a, b = statistics.median(t_ours), statistics.median(t_ref)
            r = statistics.median(o / t for o, t in zip(t_ours, t_ref))   # pairs ran back to back: load cancels
            if name == 'cnn': ratios.append(r)
            rows.append(dict(model=name, norm=norm, ours_s=a, torchattacks_s=b, ratio=r,
                             ratios=[o / t for o, t in zip(t_ours, t_ref)]))
            print(f"{name:10} {norm:5} {a:10.4f} {b:17.4f} {r:7.3f}")
    ratio = statistics.mean(ratios)
    print(f"ratio ours / torchattacks on the CNN (mean over norms of the median paired ratio): {ratio:.3f}  (goal <= 0.8); "
          f"load average {os.getloadavg() if hasattr(os, 'getloadavg') else None}")
    if args.out:
        record = dict(when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                      device=str(device), machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                      load_average_before=load_before,
                      load_average=os.getloadavg() if hasattr(os, 'getloadavg') else None, torch=torch.__version__,
                      torchattacks=torchattacks.__version__, threads=torch.get_num_threads(), batch=args.batch,
                      steps=args.steps, repeats=args.repeats, rows=rows, ratio_cnn=ratio, goal=0.8)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')
        print(f"recorded in {args.out}")


if __name__ == '__main__':
    main()
