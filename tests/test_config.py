"Tests of robust_labels.config: run ids, checks, field help."
import dataclasses, hashlib

import pytest

from robust_labels.config import RunConfig


def test_run_ids_are_stable():
    "run_id names result files: a hash of the non-default fields, as it always was."
    assert RunConfig().run_id == hashlib.sha1(b'{}').hexdigest()[:16]
    c = RunConfig(labels='vs', alpha=0.5, epochs=3)
    assert c.run_id == hashlib.sha1(b'{"alpha": 0.5, "epochs": 3, "labels": "vs"}').hexdigest()[:16]
    assert RunConfig(regime='kd', teacher='t').run_id != RunConfig(regime='ard', teacher='t').run_id


def test_checks_and_help():
    with pytest.raises(ValueError, match="regime 'kd' needs teacher"): RunConfig(regime='kd')
    with pytest.raises(ValueError, match='val must be one of'): RunConfig(val='test')
    assert all(f.metadata['help'] for f in dataclasses.fields(RunConfig))
    assert RunConfig(epochs=4, weight_decay=0.0).recipe_().weight_decay == 0.0
