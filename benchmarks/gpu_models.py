"""Training throughput and peak memory of the papers' models: one epoch each of `fit`'s training step on synthetic data.

Each model trains one epoch of `--sizes` images (the library's own `fit_state` + `train_epoch`: in-memory uint8 batches on
the device, fused SGD, AMP and channels_last on CUDA) after a short untimed warm-up (cuDNN autotuning, allocator). It
records images per second and peak memory per model in the JSON file that `reproduce --dry-run` reads for its GPU-hour
estimate; `benchmarks/gpu_check.sh` runs it on a GPU. On the CPU (`--device cpu --sizes tiny`) it checks the same code
path in seconds: AMP is then off, and the peak memory is the process's peak resident memory (not per model).

Run:  python benchmarks/gpu_models.py [--device cuda] [--sizes full|tiny] [--models wrn-40-2@32,...] [--out PATH]
      [--bench-fit benchmarks/results/fit.json]   (embeds bench_fit's record for this device type)
"""
import argparse, datetime, json, sys, time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from robust_labels.data import RandomCropFlip, make_loader
from robust_labels.models import create_model
from robust_labels.train import fit_state, get_recipe, train_epoch

# the papers' models at the sizes they train: (model name in robust_labels.models, pixels, classes)
PAPER_MODELS = (('wrn-40-2', 32, 10), ('resnet18', 32, 10), ('resnext29_2x64d', 32, 10), ('densenet_bc', 32, 10),
                ('tv_resnet18', 64, 200), ('tv_resnet18', 224, 1000), ('t2t_vit_14', 224, 1000))
# per size preset and pixel size: (batch size, images in the timed epoch, warm-up steps)
SIZES = {'full': {32: (128, 25600, 10), 64: (128, 25600, 10), 224: (128, 10240, 5)},
         'tiny': {32: (2, 4, 1), 64: (2, 4, 1), 224: (2, 2, 1)}}
BATCH_OVERRIDES = {('full', 't2t_vit_14'): 64}         # T2T-ViT-14's batch per GPU (its memory at 224 px)


def parse_models(spec:str) -> list:
    "`'name@px,...'` -> [(name, px, classes)]: the papers' list when `spec` is empty."
    if not spec: return list(PAPER_MODELS)
    known = {(n, p): k for n, p, k in PAPER_MODELS}
    out = []
    for item in spec.split(','):
        name, _, px = item.strip().partition('@')
        if not px.isdigit() or int(px) not in SIZES['full']:
            raise SystemExit(f"--models: each entry must be 'name@px' with px in {sorted(SIZES['full'])}, got {item!r}")
        out.append((name, int(px), known.get((name, int(px)), {32: 10, 64: 200, 224: 1000}[int(px)])))
    return out


def peak_memory_gib(device) -> float:
    "Peak memory of the last measurement: CUDA's allocator peak, or the process's peak resident memory on the CPU."
    if device.type == 'cuda': return torch.cuda.max_memory_allocated(device) / 2**30
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20     # Linux reports KiB


def synchronize(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def measure(name:str, px:int, classes:int, sizes:str, device, seed:int=0) -> dict:
    "Images per second and peak memory of one training epoch of model `name` on synthetic `px`-pixel images."
    batch, n, warm = SIZES[sizes][px]
    batch = BATCH_OVERRIDES.get((sizes, name), batch)
    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(seed)
    model = create_model(name, classes)
    recipe = get_recipe('smoke', epochs=10 ** 6, batch_size=batch, lr=0.01)    # a long cosine: lr ~ constant
    st = fit_state(model, recipe, augment=RandomCropFlip(4) if px <= 64 else None, device=device, amp=cuda,
                   channels_last=cuda, seed=seed)
    g = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, px, px), generator=g, device=device, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g, device=device)
    loader = make_loader(TensorDataset(images, labels), batch, shuffle=True, device=device, generator=st.loader_gen)
    warm_loader = make_loader(TensorDataset(images[:warm * batch], labels[:warm * batch]), batch, device=device)
    train_epoch(st, warm_loader, 0)                     # untimed: cuDNN autotuning, allocator, lazy initialisation
    synchronize(device)
    t = time.perf_counter()
    rec = train_epoch(st, loader, 1, progress=True)
    synchronize(device)
    seconds = time.perf_counter() - t
    return dict(images_per_second=n / seconds, peak_memory_gib=peak_memory_gib(device), batch_size=batch,
                amp=st.amp, channels_last=st.channels_last, epoch_images=n, seconds=seconds,
                train_loss=rec['train_loss'])


def bench_fit_record(path, device) -> dict|None:
    "bench_fit's record for this device type from its results file (None when it has none)."
    if not path or not Path(path).exists(): return None
    return json.loads(Path(path).read_text()).get(device.type)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--sizes', default='full', choices=list(SIZES), help="'full' for a GPU, 'tiny' to check on a CPU")
    p.add_argument('--models', default='', help="'name@px,...' (default: the papers' seven)")
    p.add_argument('--bench-fit', default='', help="bench_fit's results file, embedded under 'bench_fit'")
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'gpu.json'))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit("gpu_models: --device cuda but no CUDA device is available (torch.cuda.is_available() is "
                         "False); use --device cpu --sizes tiny to check the script on a CPU")
    if device.type == 'cuda': torch.backends.cudnn.benchmark = True
    models = parse_models(args.models)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f"gpu_models: {len(models)} models on {name} ({device}), torch {torch.__version__}, sizes {args.sizes}",
          flush=True)
    record = dict(device=name, torch=torch.__version__,
                  when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), models={})
    failed = []
    for i, (model, px, classes) in enumerate(models, 1):
        key = f"{model}@{px}"
        print(f"[{i}/{len(models)}] {key}: one epoch ...", flush=True)
        try: r = measure(model, px, classes, args.sizes, device)
        except Exception as e:                           # e.g. out of memory: record it, measure the others
            failed.append(key)
            record['models'][key] = dict(error=f"{type(e).__name__}: {e}")
            print(f"[{i}/{len(models)}] {key}: FAILED {type(e).__name__}: {e}", flush=True)
            continue
        record['models'][key] = r
        print(f"[{i}/{len(models)}] {key}: {r['images_per_second']:.1f} images/s, peak {r['peak_memory_gib']:.2f} GiB, "
              f"batch {r['batch_size']}, {r['epoch_images']} images in {r['seconds']:.1f} s", flush=True)
    fit = bench_fit_record(args.bench_fit, device)
    if fit is not None: record['bench_fit'] = fit
    elif args.bench_fit: print(f"gpu_models: no {device.type} record in {args.bench_fit}; bench_fit left out", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + '\n')
    print(f"gpu_models: wrote {out}", flush=True)
    if failed: raise SystemExit(f"gpu_models: {len(failed)} model(s) failed: {', '.join(failed)}")


if __name__ == '__main__':
    main(sys.argv[1:])
