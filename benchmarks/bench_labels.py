"""Cost of the label transforms inside a training step.

Times one SGD step of a WRN on a CIFAR-shaped batch of 128 with one-hot, SPIDER and VS labels, and reports
each as a ratio to the one-hot step measured in the same run (goal: SPIDER and VS add under 5%).
Run on demand:  python benchmarks/bench_labels.py [--model wrn-16-2] [--device cuda] [--steps 20]
"""
import argparse, time

import torch

from robust_labels.labels import SPIDER, OneHot, VirtualSmoothing, soft_cross_entropy
from robust_labels.models import create_model


def step_time(model, transform, x, y, steps, device):
    "Median seconds of one step: label transform, forward, backward, SGD update."
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 3):
        if device.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter()
        xb, targets = transform(x, y)
        loss = soft_cross_entropy(model(xb), targets)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if device.type == 'cuda': torch.cuda.synchronize()
        if i >= 3: times.append(time.perf_counter() - t0)   # the first steps warm up
    return sorted(times)[len(times) // 2]


def transform_time(transform, x, y, steps, device):
    "Median seconds of the label transform alone."
    times = []
    for _ in range(steps):
        if device.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter(); transform(x, y)
        if device.type == 'cuda': torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='wrn-40-2'); p.add_argument('--batch', type=int, default=128)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = p.parse_args()
    dev = torch.device(a.device); torch.manual_seed(0)
    x = torch.rand(a.batch, 3, 32, 32, device=dev); y = torch.randint(0, 10, (a.batch,), device=dev)
    rows = [('one-hot', OneHot(10), 0), ('SPIDER', SPIDER(10, tau=4.0, xi=0.4), 0),
            ('VS (V=10)', VirtualSmoothing(10, 10, 0.5), 10)]
    print(f"model {a.model}, batch {a.batch}x3x32x32, device {dev}, median of {a.steps} steps")
    base = None
    for name, t, v in rows:
        torch.manual_seed(0)
        model = create_model(a.model, 10, num_virtual=v).to(dev)
        s = step_time(model, t, x, y, a.steps, dev); tt = transform_time(t, x, y, a.steps, dev)
        base = base or s
        print(f"{name:10s} step {s * 1e3:8.2f} ms   ratio to one-hot {s / base:5.3f}   "
              f"label transform alone {tt * 1e3:7.3f} ms = {100 * tt / s:5.2f}% of the step")


if __name__ == '__main__':
    main()
