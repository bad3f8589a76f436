"""Benchmark: the batched boundary-thickness measurement of `robust_labels.metrics` against a per-point loop.

Both measure the same segments (digits test images to a test image of another class) on the same small CNN
trained for a few epochs; the script checks that they give the same g_ij profile and the same thickness, then
reports the wall-clock ratio measured in this run. The attack that produces x_j in `boundary_thickness` is the
same in both cases and is left out.

Run on demand (not part of the test suite):
    .venv/bin/python benchmarks/bench_thickness.py [--segments 32] [--points 128] [--threads 1]
"""
import argparse, time

import torch
import torch.nn.functional as F

from robust_labels.core import make_generator, seed_everything
from robust_labels.data import as_tensors, get_dataset
from robust_labels.labels import soft_cross_entropy
from robust_labels.metrics import segment_profile, segment_thickness
from robust_labels.models import create_model


def loop_profile(model, x_i, x_j, i, j, num_points, num_classes=None):
    "Reference: g_ij = p_i - p_j with one forward pass per point of each segment."
    t = torch.linspace(0, 1, num_points, dtype=x_i.dtype, device=x_i.device)
    g = torch.empty(len(x_i), num_points, device=x_i.device)
    with torch.no_grad():
        for n in range(len(x_i)):
            for k in range(num_points):
                logits = model(torch.lerp(x_i[n:n + 1], x_j[n:n + 1], t[k]))
                p = (logits if num_classes is None else logits[:, :num_classes]).softmax(1)[0]
                g[n, k] = p[i[n]] - p[j[n]]
    return g


def best_of(fn, repeat, device):
    "Smallest wall-clock time of `repeat` calls, and the last result."
    times = []
    for _ in range(repeat):
        if device.type == 'cuda': torch.cuda.synchronize(device)
        start = time.perf_counter(); out = fn()
        if device.type == 'cuda': torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--segments', type=int, default=32, help='segments measured (the paper: batches of 32)')
    ap.add_argument('--points', type=int, default=128, help='points per segment (the paper: 128)')
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    ap.add_argument('--device', default='cpu', help="where to measure, e.g. 'cuda'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads); device = torch.device(args.device)

    x_tr, y_tr = as_tensors(get_dataset('digits', 'train')); x_te, y_te = as_tensors(get_dataset('digits', 'test'))
    seed_everything(0)
    model = create_model('cnn', 10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3); g = make_generator(0)
    for _ in range(3):
        for idx in torch.randperm(len(x_tr), generator=g).split(64):
            opt.zero_grad(); soft_cross_entropy(model(x_tr[idx]), F.one_hot(y_tr[idx], 10).float()).backward(); opt.step()
    model.eval().to(device); x_te, y_te = x_te.to(device), y_te.to(device)

    n = args.segments
    x_i, i = x_te[:n], y_te[:n]
    other = torch.tensor([int(torch.nonzero(y_te != c)[k % 50]) for k, c in enumerate(i.tolist())])  # a test image of another class
    x_j, j = x_te[other], y_te[other]

    t_vec, g_vec = best_of(lambda: segment_profile(model, x_i, x_j, i, j, num_points=args.points), 3, device)
    t_loop, g_loop = best_of(lambda: loop_profile(model, x_i, x_j, i, j, args.points), 1, device)
    th_vec = segment_thickness(model, x_i, x_j, i, j, num_points=args.points)
    th_loop = (x_j - x_i).flatten(1).norm(dim=1) * ((g_loop > 0) & (g_loop < 0.75)).float().mean(1)

    max_diff = float((g_vec - g_loop).abs().max())
    same_thickness = torch.equal(th_vec, th_loop)
    print(f"segments {n} x points {args.points} = {n * args.points} forward points on {device}, {args.threads} thread(s), "
          f"torch {torch.__version__}")
    print(f"profile max |batched - loop| = {max_diff:.2e}; thickness identical: {same_thickness} "
          f"(mean {float(th_vec.mean()):.4f})")
    print(f"batched {t_vec * 1e3:.1f} ms, per-point loop {t_loop * 1e3:.1f} ms, speed-up x{t_loop / t_vec:.1f}")
    if max_diff > 1e-5 or not same_thickness:
        raise SystemExit("batched and per-point results differ")


if __name__ == '__main__':
    main()
