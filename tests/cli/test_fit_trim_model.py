"""`fit --trim-model`: the written model says which parameters were fitted and which were
carried over from which file (no bundled pair named as the fit's source), the command warns and
points to fit-model, and ``--base`` picks the file the others come from."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.fitting.model_fit import sha256_file
from trimpomdp.model import load_model
from trimpomdp.resources import default_model_path

SECOND_PAIR = default_model_path().parent / "qwen2.5-1.5b_to_qwen3-8b_math-train.json"


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(80):
        n = int(rng.integers(3, 8))
        fe = None if i % 2 else int(rng.integers(0, n))
        lines.append(json.dumps({"problem_id": f"p{i}", "scores": rng.random(n).tolist(),
                                 "first_error": fe, "correct": fe is None}))
    p = tmp_path / "traces.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("base", [None, SECOND_PAIR])
def test_provenance_names_fitted_and_carried_parameters(data, tmp_path, capsys, base):
    out = tmp_path / "m.json"
    argv = ["fit", "--data", str(data), "--out", str(out), "--trim-model", "--alpha", "0.1"]
    if base is not None:
        argv += ["--base", str(base)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    src = load_model(base)
    path = base or default_model_path()
    warn = [ln for ln in err.splitlines() if "--trim-model fits only the observation model" in ln]
    assert len(warn) == 1 and "fit-model" in warn[0] and str(path) in warn[0]
    assert f"p_weak={src.p_weak:g}" in warn[0]
    m = load_model(out)
    prov = m.provenance
    assert prov["source"] == "trimpomdp fit --trim-model"
    assert set(prov["fitted"]) == {"observation_model"}
    fitted = prov["fitted"]["observation_model"]
    assert fitted["data"] == str(data) and fitted["data_sha256"] == sha256_file(data)
    assert fitted["method"] == "binned" and fitted["n"] > 0
    carried = prov["carried_over"]
    assert carried["from"] == str(path) and carried["sha256"] == sha256_file(path)
    assert carried["model"] == src.name
    par = carried["parameters"]
    assert set(par) == {"p_weak", "p_strong", "hazard", "future_tokens", "max_steps", "reward"}
    # the values recorded are the ones in the written model, and they are the base's
    for k in ("p_weak", "p_strong", "future_tokens", "max_steps", "reward"):
        assert par[k] == getattr(m, k) == getattr(src, k), k
    np.testing.assert_array_equal(par["hazard"], m.hazard)
    # the base's own provenance is kept only under carried_over, without its observation model
    assert "observation_model" not in carried["source_provenance"]
    assert "weak" not in prov and "strong" not in prov
    assert not np.array_equal(m.obs_probs, src.obs_probs)
    assert m.name == f"fit:{data.name}"


def test_base_needs_trim_model_and_must_exist(data, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--out", str(out), "--base",
                 str(SECOND_PAIR)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--base is used only with --trim-model" in err and len(err.splitlines()) == 1
    assert main(["fit", "--data", str(data), "--out", str(out), "--trim-model", "--base",
                 str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.json" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_observation_model_output_has_no_warning(data, tmp_path, capsys):
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "o.json"),
                 "--alpha", "0.1"]) == 0
    assert "carried over" not in capsys.readouterr().err
