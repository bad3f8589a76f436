"""Speed of robust_labels.corruptions against the reference approach, measured in the same run.

The reference approach is how the published -C sets were made (hendrycks/robustness, make_cifar_c.py): one image at a
time through numpy, scipy and Pillow. The per-image functions below follow that script's steps and CIFAR-10-C constants,
written for this benchmark with the libraries available here (no OpenCV, scikit-image or ImageMagick: their steps are
done with scipy/numpy equivalents of the same cost class). We time them on N 32x32 images against one batched
`corrupt` call on the same N images, for severities 1, 3 and 5, on one CPU thread each.

    python benchmarks/bench_corruptions.py [--n 128] [--severities 1 3 5] [--threads 1] [--out result.json]
"""
import argparse, io, json, math, time

import numpy as np
import torch
from PIL import Image
from scipy import ndimage as ndi

from robust_labels.core import environment, make_generator
from robust_labels.corruptions import CORRUPTIONS, CORRUPTION_CONSTANTS, corrupt

C = CORRUPTION_CONSTANTS['cifar']
rng = np.random.default_rng(0)


# ------------------------------------------------------------------ reference, one image (H, W, 3) float in [0, 1]

def ref_gaussian_noise(x, c): return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1)
def ref_shot_noise(x, c): return np.clip(rng.poisson(x * c) / c, 0, 1)

def ref_impulse_noise(x, c):
    out = x.copy(); hit = rng.random(x.shape) < c
    out[hit] = (rng.random(hit.sum()) < 0.5).astype(float)
    return out

def _disk(radius, alias_blur):
    L = np.arange(-8, 9); X, Y = np.meshgrid(L, L)
    d = ((X ** 2 + Y ** 2) <= radius ** 2).astype(np.float64); d /= d.sum()
    return ndi.gaussian_filter(d, alias_blur, truncate=1 / max(alias_blur, 1e-6), mode='mirror')

def ref_defocus_blur(x, c):
    k = _disk(*c)
    return np.clip(np.stack([ndi.correlate(x[..., d], k, mode='mirror') for d in range(3)], -1), 0, 1)

def ref_glass_blur(x, c):
    sigma, m, iters = c
    x = np.uint8(ndi.gaussian_filter(x, (sigma, sigma, 0)) * 255)
    for _ in range(iters):
        for h in range(32 - m, m, -1):
            for w in range(32 - m, m, -1):
                dx, dy = rng.integers(-m, m, size=(2,))
                hp, wp = h + dy, w + dx
                x[h, w], x[hp, wp] = x[hp, wp], x[h, w].copy()
    return np.clip(ndi.gaussian_filter(x / 255., (sigma, sigma, 0)), 0, 1)

def _motion(img2d, radius, sigma, angle):
    width = 2 * math.ceil(radius) + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)); k /= k.sum()
    a = math.radians(angle); out = np.zeros_like(img2d)
    H, W = img2d.shape
    for i in range(width):
        ox, oy = math.ceil(i * math.cos(a) - 0.5), math.ceil(i * math.sin(a) - 0.5)
        r = np.clip(np.arange(H) + oy, 0, H - 1); q = np.clip(np.arange(W) + ox, 0, W - 1)
        out += k[i] * img2d[np.ix_(r, q)]
    return out

def ref_motion_blur(x, c):
    a = rng.uniform(-45, 45)
    return np.clip(np.stack([_motion(x[..., d], c[0], c[1], a) for d in range(3)], -1), 0, 1)

def _clipped_zoom(img, z):
    h = img.shape[0]; ch = int(np.ceil(h / z)); top = (h - ch) // 2
    img = ndi.zoom(img[top:top + ch, top:top + ch], (z, z) + (1,) * (img.ndim - 2), order=1)
    t = (img.shape[0] - h) // 2
    return img[t:t + h, t:t + h]

def ref_zoom_blur(x, c):
    zs = np.arange(1, c[0], c[1]); out = np.zeros_like(x)
    for z in zs: out += _clipped_zoom(x, z)
    return np.clip((x + out) / (len(zs) + 1), 0, 1)

def ref_snow(x, c):
    layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer, c[2]); layer[layer < c[3]] = 0
    layer = np.uint8(np.clip(layer, 0, 1) * 255) / 255.
    layer = _motion(layer, c[4], c[5], rng.uniform(-135, -45))[..., None]
    gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1)

FROST_FILES = []   # six 512x512 PNG stand-ins for the frost photographs, written once by `main`

def ref_frost(x, c):
    # as the reference: read one of the photographs, shrink it by 0.2, crop 32x32, blend
    with Image.open(FROST_FILES[rng.integers(5)]) as im:
        f = np.asarray(im.convert('RGB').resize((im.width // 5, im.height // 5), Image.BILINEAR)) / 255.
    i, j = rng.integers(0, f.shape[0] - 32), rng.integers(0, f.shape[1] - 32)
    return np.clip(c[0] * x + c[1] * f[i:i + 32, j:j + 32], 0, 1)

def _plasma(mapsize, decay):
    m = np.zeros((mapsize, mapsize)); step, wibble = mapsize, 100.0
    while step >= 2:
        h = step // 2
        corners = m[0::step, 0::step]; sq = corners + np.roll(corners, -1, 0); sq += np.roll(sq, -1, 1)
        m[h::step, h::step] = sq / 4 + wibble * rng.uniform(-wibble, wibble, sq.shape)
        dr, ul = m[h::step, h::step], m[0::step, 0::step]
        m[0::step, h::step] = (dr + np.roll(dr, 1, 0) + ul + np.roll(ul, -1, 1)) / 4 + wibble * rng.uniform(-wibble, wibble, dr.shape)
        m[h::step, 0::step] = (dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 0)) / 4 + wibble * rng.uniform(-wibble, wibble, dr.shape)
        step //= 2; wibble /= decay
    m -= m.min(); return m / m.max()

def ref_fog(x, c):
    top = x.max(); x = x + c[0] * _plasma(32, c[1])[..., None]
    return np.clip(x * top / (top + c[0]), 0, 1)

def _rgb2hsv(x):
    v = x.max(-1); mn = x.min(-1); d = v - mn
    s = np.where(v > 0, d / np.where(v > 0, v, 1), 0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]; dd = np.where(d > 0, d, 1)
    h = np.where(v == r, (g - b) / dd, np.where(v == g, 2 + (b - r) / dd, 4 + (r - g) / dd))
    return np.stack([(h / 6) % 1, s, v], -1)

def _hsv2rgb(hsv):
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6).astype(int) % 6; f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [np.stack(c, -1) for c in [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]]
    return np.choose(i[..., None], choices)

def ref_brightness(x, c):
    hsv = _rgb2hsv(x); hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(_hsv2rgb(hsv), 0, 1)

def ref_contrast(x, c):
    m = x.mean((0, 1), keepdims=True); return np.clip((x - m) * c + m, 0, 1)

def ref_elastic_transform(x, c):
    alpha, sigma, jitter = c; H = x.shape[0]
    cs, s = H // 2, H // 3
    p1 = np.float64([[cs + s, cs + s], [cs + s, cs - s], [cs - s, cs - s]])
    p2 = p1 + rng.uniform(-jitter, jitter, size=p1.shape)
    M = np.linalg.solve(np.c_[p1, np.ones(3)], p2).T
    inv = np.linalg.inv(np.r_[M, [[0, 0, 1]]])
    # affine warp (x, y) order -> scipy's (row, col)
    mat = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]]); off = np.array([inv[1, 2], inv[0, 2]])
    x = np.stack([ndi.affine_transform(x[..., d], mat, off, order=1, mode='mirror') for d in range(3)], -1)
    dx = ndi.gaussian_filter(rng.uniform(-1, 1, size=(H, H)), sigma, mode='reflect', truncate=3) * alpha
    dy = ndi.gaussian_filter(rng.uniform(-1, 1, size=(H, H)), sigma, mode='reflect', truncate=3) * alpha
    yy, xx = np.meshgrid(np.arange(H), np.arange(H), indexing='ij')
    return np.clip(np.stack([ndi.map_coordinates(x[..., d], [yy + dy, xx + dx], order=1, mode='reflect') for d in range(3)], -1), 0, 1)

def ref_pixelate(x, c):
    im = Image.fromarray(np.uint8(x * 255 + 0.5)); n = int(32 * c)
    return np.asarray(im.resize((n, n), Image.BOX).resize((32, 32), Image.BOX)) / 255.

def ref_jpeg_compression(x, c):
    b = io.BytesIO(); Image.fromarray(np.uint8(x * 255 + 0.5)).save(b, 'JPEG', quality=c)
    return np.asarray(Image.open(b)) / 255.

REFERENCE = {name: globals()[f'ref_{name}'] for name in CORRUPTIONS}


# ------------------------------------------------------------------ timing

def timed(f, repeat=1):
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    return best

def main(n=128, severities=(1, 3, 5), threads=1, out=None):
    import tempfile
    torch.set_num_threads(threads)
    tmp = tempfile.mkdtemp()
    for k in range(6):
        tex = (ndi.zoom(rng.random((64, 64, 3)), (8, 8, 1), order=1) * 255).astype(np.uint8)
        FROST_FILES.append(f'{tmp}/frost{k}.png'); Image.fromarray(tex).save(FROST_FILES[-1])
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=make_generator(0)), size=32, mode='bicubic').clamp(0, 1)
    imgs = x.permute(0, 2, 3, 1).double().numpy()
    corrupt(x[:2], 'fog', 1, make_generator(0))      # warm-up
    rows, total_ref, total_ours = [], 0.0, 0.0
    for name in CORRUPTIONS:
        t_ref = sum(timed(lambda: [REFERENCE[name](im, C[name][s - 1]) for im in imgs]) for s in severities)
        t_ours = sum(timed(lambda: corrupt(x, name, s, make_generator(s)), repeat=2) for s in severities)
        k = n * len(severities)
        rows.append(dict(corruption=name, reference_ms_per_image=1e3 * t_ref / k, ours_ms_per_image=1e3 * t_ours / k,
                         ratio=t_ref / t_ours))
        total_ref += t_ref; total_ours += t_ours
        print(f"{name:18s} reference {1e3 * t_ref / k:8.3f} ms/img   ours {1e3 * t_ours / k:8.3f} ms/img   x{t_ref / t_ours:7.1f}", flush=True)
    k = n * len(severities) * len(CORRUPTIONS)
    summary = dict(images=n, severities=list(severities), threads=threads, reference_ms_per_image=1e3 * total_ref / k,
                   ours_ms_per_image=1e3 * total_ours / k, ratio=total_ref / total_ours,
                   geometric_mean_ratio=float(np.exp(np.mean([np.log(r['ratio']) for r in rows]))),
                   environment=environment('cpu'), rows=rows)
    print(f"{'all 15':18s} reference {summary['reference_ms_per_image']:8.3f} ms/img   ours {summary['ours_ms_per_image']:8.3f} ms/img"
          f"   x{summary['ratio']:7.1f} (total time), x{summary['geometric_mean_ratio']:.1f} (geometric mean over corruptions); goal >= 10")
    if out:
        with open(out, 'w') as f: json.dump(summary, f, indent=2)
    return summary


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=128); p.add_argument('--severities', type=int, nargs='+', default=[1, 3, 5])
    p.add_argument('--threads', type=int, default=1); p.add_argument('--out', default=None)
    a = p.parse_args()
    main(a.n, tuple(a.severities), a.threads, a.out)
