"""Speed of one `robust_labels.train.fit` epoch against the plain training loop of the papers' reference code.

The plain loop is how the SPIDER and VS repositories train: a torchvision-style Dataset that returns one image at a
time (uint8 array -> PIL -> RandomCrop(32, padding=4) -> RandomHorizontalFlip -> ToTensor), a DataLoader, and
`loss.item()` after every step. Ours is an epoch of `fit` (the same `train_epoch` that `fit` runs) on the same uint8
images with the batched `RandomCropFlip(4)`, in-memory batches and no per-step host syncs. Both train the same model
(WRN-16-2 and the digits CNN, on CIFAR-shaped synthetic data) with the same SGD settings, interleaved in one process so
that machine load hits both alike. Prints the median epoch time of each and the speed-up plain / ours (goal: >= 1.0 on
a CPU, >= 3 on a GPU), and writes them to benchmarks/results/fit.json.

Run on demand (not by CI):  python benchmarks/bench_fit.py [--device cuda] [--n 1024] [--repeats 3] [--threads 1]
"""
import argparse, json, platform, statistics, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from robust_labels.data import RandomCropFlip, make_loader
from robust_labels.models import create_model
from robust_labels.train import fit_state, get_recipe, train_epoch


class CIFARStyle(Dataset):
    "Like torchvision.datasets.CIFAR10: uint8 H×W×C images, one PIL image per item through `transform`."
    def __init__(self, images, labels, transform): self.images, self.labels, self.transform = images, labels, transform
    def __len__(self): return len(self.images)
    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def paper_transform():
    "The papers' CIFAR training transform."
    from torchvision import transforms
    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor()])


def plain_epoch(model, opt, loader, device):
    "One epoch as the reference code runs it: per-step host reads of the loss."
    model.train()
    total = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
    return total


def timed(fn, device):
    "Seconds one call of `fn` takes (synchronised on CUDA)."
    if device.type == 'cuda': torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == 'cuda': torch.cuda.synchronize(device)
    return time.perf_counter() - t


def bench_model(name, make, images, labels, args, device):
    "Median epoch seconds of ours and of the plain loop for one model, interleaved."
    recipe = get_recipe('smoke', epochs=10 ** 6, batch_size=args.batch, lr=0.01)   # a long cosine: lr ~ constant
    torch.manual_seed(0)
    ours_model = make()
    st = fit_state(ours_model, recipe, augment=RandomCropFlip(4, True), device=device, seed=0)
    x_u8 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()              # N×C×H×W uint8, as fit takes it
    loader = make_loader(TensorDataset(x_u8, torch.from_numpy(labels)), args.batch, shuffle=True, device=device,
                         generator=st.loader_gen)
    torch.manual_seed(0)
    plain_model = make().to(device)
    opt = torch.optim.SGD(plain_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    plain_loader = DataLoader(CIFARStyle(images, labels, paper_transform()), batch_size=args.batch, shuffle=True,
                              num_workers=args.workers, pin_memory=device.type == 'cuda',
                              persistent_workers=args.workers > 0)
    epoch = [0]
    def ours():
        train_epoch(st, loader, epoch[0])
        epoch[0] += 1
    def plain(): plain_epoch(plain_model, opt, plain_loader, device)
    ours()                                              # warm-up (allocator, kernels, DataLoader workers)
    plain()
    t_ours, t_plain = [], []
    for _ in range(args.repeats):                       # interleaved, so drifting load hits both
        t_ours.append(timed(ours, device))
        t_plain.append(timed(plain, device))
    a, b = statistics.median(t_ours), statistics.median(t_plain)
    return dict(model=name, ours_s=a, plain_s=b, speedup=b / a, ours_all=t_ours, plain_all=t_plain)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--n', type=int, default=1024, help='training images (CIFAR-shaped, synthetic)')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--workers', type=int, default=None,
                   help='plain loop DataLoader workers (default: 0 on CPU, 4 on GPU)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: leave as is)')
    p.add_argument('--models', default='wrn-16-2,cnn')
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'fit.json'))
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.workers is None: args.workers = 4 if device.type == 'cuda' else 0
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.n).astype(np.int64)
    makers = {'wrn-16-2': lambda: create_model('wrn-16-2', 10), 'cnn': lambda: create_model('cnn', 10, in_channels=3)}
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {args.n} images of 3x32x32, "
          f"batch {args.batch}, repeats {args.repeats}, plain-loop workers {args.workers}")
    print(f"{'model':9} {'ours (s)':>9} {'plain (s)':>10} {'speed-up plain/ours':>20}")
    rows = []
    for name in args.models.split(','):
        r = bench_model(name, makers[name], images, labels, args, device)
        rows.append(r)
        print(f"{name:9} {r['ours_s']:9.3f} {r['plain_s']:10.3f} {r['speedup']:20.3f}")
    goal = 3.0 if device.type == 'cuda' else 1.0
    summary = ', '.join(f"{r['model']} {r['speedup']:.2f}x" for r in rows)
    print(f"speed-up of fit over the plain loop: {summary}  (goal >= {goal}x on {device.type})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = dict(device=str(device), device_name=torch.cuda.get_device_name(device) if device.type == 'cuda'
                  else platform.processor() or platform.machine(), torch=torch.__version__,
                  threads=torch.get_num_threads(), n=args.n, batch=args.batch, repeats=args.repeats,
                  workers=args.workers, goal=goal, when=time.strftime('%Y-%m-%d %H:%M:%S'), rows=rows)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[device.type] = record                      # one record per device type: a GPU run keeps the CPU one
    out.write_text(json.dumps(results, indent=1) + '\n')
    print(f"wrote {out}")


if __name__ == '__main__':
    main()
