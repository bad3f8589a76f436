"The GPU check's CPU-side logic (issue 11 §4): gpu_models.py's JSON format, the CUDA-test finder, and gpu_check.sh's exit."
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'benchmarks'))
import cuda_tests, gpu_models  # noqa: E402


def test_gpu_models_json_format(tmp_path):
    "Tiny CPU run of two paper models: every model entry has the fields `reproduce --dry-run` reads, bench_fit embedded."
    fit = tmp_path / 'fit.json'
    fit.write_text(json.dumps({'cpu': {'device': 'cpu', 'rows': [{'model': 'cnn', 'speedup': 1.1}]}}))
    out = tmp_path / 'gpu.json'
    gpu_models.main(['--device', 'cpu', '--sizes', 'tiny', '--models', 'wrn-40-2@32,tv_resnet18@64',
                     '--bench-fit', str(fit), '--out', str(out)])
    rec = json.loads(out.read_text())
    assert rec['device'] == 'cpu' and rec['torch'] == torch.__version__ and rec['when'].endswith('+00:00')
    assert list(rec['models']) == ['wrn-40-2@32', 'tv_resnet18@64']
    for key, m in rec['models'].items():
        assert isinstance(m['images_per_second'], float) and m['images_per_second'] > 0, key
        assert isinstance(m['peak_memory_gib'], float) and m['peak_memory_gib'] > 0, key
        assert m['batch_size'] == 2 and m['epoch_images'] == 4, key
        assert m['amp'] is False and m['channels_last'] is False, key      # AMP and channels_last are CUDA-only
    assert rec['bench_fit'] == {'device': 'cpu', 'rows': [{'model': 'cnn', 'speedup': 1.1}]}


def test_paper_models_are_library_names():
    "The seven (model, px) pairs of issue 11 §4, each a name `robust_labels.models` builds, each size with a preset."
    from robust_labels.models import list_models
    pairs = [(n, px) for n, px, _ in gpu_models.PAPER_MODELS]
    assert pairs == [('wrn-40-2', 32), ('resnet18', 32), ('resnext29_2x64d', 32), ('densenet_bc', 32),
                     ('tv_resnet18', 64), ('tv_resnet18', 224), ('t2t_vit_14', 224)]
    assert all(n in list_models() for n, _ in pairs)
    assert all(px in gpu_models.SIZES[s] for s in gpu_models.SIZES for _, px in pairs)
    assert gpu_models.parse_models('') == list(gpu_models.PAPER_MODELS)
    assert gpu_models.parse_models('cnn@32, tv_resnet18@224') == [('cnn', 32, 10), ('tv_resnet18', 224, 1000)]
    with pytest.raises(SystemExit, match="'name@px' with px in"): gpu_models.parse_models('cnn@48')
    with pytest.raises(SystemExit, match="'name@px'"): gpu_models.parse_models('cnn')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a machine without CUDA')
def test_cuda_requested_without_a_gpu(tmp_path):
    with pytest.raises(SystemExit, match='no CUDA device is available'):
        gpu_models.main(['--device', 'cuda', '--out', str(tmp_path / 'g.json')])
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_check.sh')], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and 'no CUDA device' in r.stderr and '--cpu' in r.stderr
    r = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_check.sh'), '--gpu'], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 64 and "unknown argument '--gpu'" in r.stderr


def test_cuda_tests_found(tmp_path):
    "Tests skipped without CUDA (functions and classes) and notebooks with `#| cuda` cells are found; others are not."
    ids = cuda_tests.pytest_ids(ROOT / 'tests')
    assert 'tests/test_corruptions.py::test_cpu_generator_gives_the_same_corruption_on_gpu' in ids
    assert 'tests/test_augment.py::test_on_the_gpu' in ids
    d = tmp_path / 'tests'
    d.mkdir()
    (d / 'test_x.py').write_text(
        "import pytest, torch\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='x')\ndef test_a(): pass\n"
        "@pytest.mark.skipif(True, reason='needs a GPU')\ndef test_b(): pass\n"
        "@pytest.mark.skipif(True, reason='needs Ray')\ndef test_c(): pass\n"
        "@pytest.mark.skipif(torch.cuda.is_available(), reason='runs without CUDA')\ndef test_f(): pass\n"
        "def test_d(): pass\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='x')\nclass TestG:\n    def test_e(self): pass\n")
    assert cuda_tests.pytest_ids(d) == ['tests/test_x.py::test_a', 'tests/test_x.py::test_b',
                                        'tests/test_x.py::TestG::test_e']
    nb = lambda src: json.dumps({'cells': [{'cell_type': 'code', 'source': src, 'metadata': {}}]})
    (tmp_path / 'a.ipynb').write_text(nb(['#| cuda\n', 'x = 1']))
    (tmp_path / 'b.ipynb').write_text(nb('#| slow\nx = "cuda"'))
    assert cuda_tests.cuda_notebooks(tmp_path) == [tmp_path / 'a.ipynb']
