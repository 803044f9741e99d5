import json

import pytest

from trimpomdp.cli.main import main


def test_evaluate_writes_table_and_plot(tmp_path, capsys):
    stem = tmp_path / "res"
    rc = main(["evaluate", "--policies", "thr:0.1", "thr:0.5", "query:0.5", "--n", "150",
               "--out", str(stem), "--plot", str(tmp_path / "c.png")])
    assert rc == 0
    doc = json.loads((tmp_path / "res.json").read_text())
    assert [r["policy"] for r in doc["rows"]] == ["thr", "query"]
    assert (tmp_path / "res.md").read_text().startswith("# Policy comparison")
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert "CPT(50%)" in capsys.readouterr().out


def test_train_agg_then_simulate(tmp_path, capsys):
    pytest.importorskip("torch")
    ck = tmp_path / "agg.json"
    assert main(["train-agg", "--lambda", "0.3", "--out", str(ck), "--iterations", "2",
                 "--episodes", "64"]) == 0
    capsys.readouterr()
    assert main(["simulate", "--policy", f"agg:{ck}", "--n", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"].startswith("agg:")
    assert main(["simulate", "--policy", f"seq:{ck}", "--n", "5"]) == 2  # wrong type
    doc = json.loads(ck.read_text())
    assert doc["config"]["observe_regenerated"] is True  # the release's bookkeeping, recorded
    off = tmp_path / "agg_off.json"
    assert main(["train-agg", "--lambda", "0.3", "--out", str(off), "--iterations", "1",
                 "--episodes", "32", "--no-observe-regenerated"]) == 0
    assert json.loads(off.read_text())["config"]["observe_regenerated"] is False
    warm = tmp_path / "agg_warm.json"
    assert main(["train-agg", "--lambda", "0.4", "--out", str(warm), "--iterations", "1",
                 "--episodes", "32", "--init", str(ck)]) == 0
    assert json.loads(warm.read_text())["info"]["init_from"] == {"kind": "agg", "lam": 0.3}
    capsys.readouterr()
    assert main(["train-agg", "--lambda", "0.4", "--out", str(warm), "--seq", "--init",
                 str(ck)]) == 2  # an Agg checkpoint cannot start a Seq policy
    assert "agg" in capsys.readouterr().err
    capsys.readouterr()


def test_train_agg_bad_lambda(tmp_path, capsys):
    assert main(["train-agg", "--lambda", "-1", "--out", str(tmp_path / "x.json")]) == 2
