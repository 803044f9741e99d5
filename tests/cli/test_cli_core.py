"""In-process CLI tests through main([...]): fit, solve, act, sweep, export-pomdp, explain."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.builders import observation_model


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("pol") / "p.json"
    assert main(["solve", "--lambda", "0.25", "--out", str(p)]) == 0
    return p


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("trimpomdp ")
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err


def test_fit_labelled_observations(tmp_path, capsys, default_model):
    ref = observation_model(default_model)
    rows = []
    for c, name in enumerate(["S0", "S1", "S2"]):
        for x in ref.sample(300, c, random_state=c):
            rows.append(json.dumps({"min_prev": x[0], "current": x[1], "state": name}))
    data = tmp_path / "obs.jsonl"
    data.write_text("\n".join(rows) + "\n")
    for method in ("binned", "kde"):
        out = tmp_path / f"m_{method}.json"
        code, stdout, err = run(capsys, "fit", "--data", str(data), "--out", str(out),
                                "--method", method)
        assert code == 0, err
        assert json.loads(stdout)["per_class"] == {"S0": 300, "S1": 300, "S2": 300}
        assert out.exists()


def test_fit_traces_with_labelling_rule(tmp_path, capsys):
    data = tmp_path / "traces.jsonl"
    rng = np.random.default_rng(0)
    lines = []
    for i in range(60):
        n = int(rng.integers(3, 8))
        fe = None if i % 2 else int(rng.integers(0, n))
        lines.append(json.dumps({"problem_id": f"p{i}", "scores": rng.random(n).tolist(),
                                 "first_error": fe, "correct": fe is None}))
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "model.json"
    code, stdout, err = run(capsys, "fit", "--data", str(data), "--out", str(out), "--trim-model")
    assert code == 0, err
    code, stdout, err = run(capsys, "solve", "--lambda", "0.3", "--model", str(out), "--out",
                            str(tmp_path / "p.json"))
    assert code == 0, err


@pytest.mark.parametrize("content,needle", [
    ('{"min_prev": 1.0, "current": 0.5, "state": "S0"}\nnot json\n', ":2: line is not valid JSON"),
    ('{"min_prev": 1.0, "current": 1.5, "state": "S0"}\n', ":1: field 'current'"),
    ('{"min_prev": NaN, "current": 0.5, "state": "S0"}\n', ":1: field 'min_prev'"),
    ('{"min_prev": 1.0, "current": 0.5, "state": "S9"}\n', ":1: field 'state'"),
    ("", "file is empty"),
])
def test_fit_bad_input_one_line_exit_2_no_output(tmp_path, capsys, content, needle):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    out = tmp_path / "out.json"
    code, _, err = run(capsys, "fit", "--data", str(data), "--out", str(out))
    assert code == 2
    assert needle in err and str(data) in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


def test_model_file_errors(tmp_path, capsys, default_model):
    doc = default_model.to_dict()
    doc["obs_probs"]["S1"][0] += 0.01
    bad = tmp_path / "bad_model.json"
    bad.write_text(json.dumps(doc))
    code, _, err = run(capsys, "solve", "--lambda", "0.2", "--model", str(bad), "--out",
                       str(tmp_path / "p.json"))
    assert code == 2 and "must sum to 1" in err and "bad_model.json" in err
    trunc = tmp_path / "trunc.json"
    trunc.write_text(json.dumps(default_model.to_dict())[:500])
    code, _, err = run(capsys, "solve", "--lambda", "0.2", "--model", str(trunc), "--out",
                       str(tmp_path / "p.json"))
    assert code == 2 and "truncated" in err
    assert not (tmp_path / "p.json").exists()


def test_act_json_and_errors(policy_file, capsys, tmp_path):
    code, out, _ = run(capsys, "act", "--policy", str(policy_file), "--step", "3", "--tokens",
                       "60", "--belief", "0.2,0.1,0.7")
    res = json.loads(out)
    assert code == 0 and res["action"] == "regenerate" and len(res["q"]) == 2
    code, out, _ = run(capsys, "act", "--policy", str(policy_file), "--step", "3", "--tokens",
                       "60", "--belief", "0.99995,0.00001,0.00001")
    assert code == 0 and json.loads(out)["action"] == "continue"
    for args, needle in [(["--step", "30"], "step"), (["--step", "-1"], "step"),
                         (["--tokens", "0"], "tokens"), (["--belief", "0.5,0.6,0"], "sum to 1"),
                         (["--belief", "1.2,-0.2,0"], "non-negative")]:
        base = {"--step": "3", "--tokens": "60", "--belief": "0.2,0.1,0.7"}
        base.update(dict(zip(args[::2], args[1::2])))
        argv = ["act", "--policy", str(policy_file)] + [x for kv in base.items() for x in kv]
        code, _, err = run(capsys, *argv)
        assert code == 2 and needle in err
    code, _, err = run(capsys, "solve", "--lambda", "-0.1", "--out", str(tmp_path / "x.json"))
    assert code == 2 and "lambda" in err


def test_policy_from_other_version(policy_file, tmp_path, capsys):
    doc = json.loads(policy_file.read_text())
    doc["schema_version"] = 99
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    code, _, err = run(capsys, "act", "--policy", str(other), "--step", "1", "--tokens", "10",
                       "--belief", "1,0,0")
    assert code == 2 and "schema_version" in err
    doc["schema_version"] = 1
    doc["model"]["p_weak"] = 0.5
    other.write_text(json.dumps(doc))
    code, _, err = run(capsys, "act", "--policy", str(other), "--step", "1", "--tokens", "10",
                       "--belief", "1,0,0")
    assert code == 2 and "model_fingerprint" in err


def test_sweep_export_explain(tmp_path, capsys, policy_file):
    code, out, err = run(capsys, "sweep", "--lambdas", "0.1:0.5:3", "--out", str(tmp_path / "sw"),
                         "--quiet")
    assert code == 0, err
    from trimpomdp.policies.policy_set import PolicySet

    ps = PolicySet.load(tmp_path / "sw")
    assert ps.lambdas == pytest.approx([0.1, 0.3, 0.5])
    shares = [r["regen_share_grid"] for r in ps.summary]
    assert shares[0] > shares[1] > shares[2]
    code, out, err = run(capsys, "export-pomdp", "--lambda", "0.25", "--step", "27", "--tokens",
                         "80", "--belief", "0.6,0.1,0.3", "--out", str(tmp_path / "t.pomdp"))
    assert code == 0, err
    from trimpomdp.pomdp.cassandra import read_cassandra

    tab = read_cassandra(tmp_path / "t.pomdp")
    assert tab.n_states == 3 * 3 + 3 + 1 and tab.n_observations == 801
    code, out, err = run(capsys, "explain", "--policy", str(policy_file), "--step", "4",
                         "--out", str(tmp_path / "map.png"))
    assert code == 0, err
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_solve_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from trimpomdp.cli.main import main; "
            "main(['act', '--help']) if False else None; "
            "import trimpomdp.cli.solve, trimpomdp.solvers.finite_horizon; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_solve_for_budget(tmp_path, capsys):
    code, out, err = run(capsys, "solve", "--budget", "0.2", "--out", str(tmp_path / "b.json"))
    assert code == 0, err
    lam_20 = json.loads(out)["lambda"]
    code, out, err = run(capsys, "solve", "--budget", "0.4", "--out", str(tmp_path / "c.json"))
    assert code == 0, err
    # a larger budget buys more strong tokens: a cheaper price per token
    assert json.loads(out)["lambda"] < lam_20
    code, _, err = run(capsys, "solve", "--budget", "1.5", "--out", str(tmp_path / "d.json"))
    assert code == 2 and "budget" in err
