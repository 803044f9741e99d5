import json
import sys

import pytest

from trimpomdp.cli.main import main


def test_simulate_json(capsys):
    assert main(["simulate", "--policy", "thr:0.3", "--n", "200", "--seed", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "thr:0.3" and out["n"] == 200
    assert 0 < out["accuracy"] < 1 and 0 < out["strong_share"] < 1
    assert {"mean_strong_tokens", "target_token_frac"} <= set(out)


def test_simulate_text_and_pomdp(capsys):
    assert main(["simulate", "--policy", "pomdp-filter:0.3", "--n", "100"]) == 0
    assert "strong-token share" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["simulate", "--policy", "thr:abc"], ["simulate", "--policy", "bogus"],
    ["simulate", "--policy", "thr:1.5"], ["simulate", "--policy", "weak", "--n", "0"],
    ["simulate", "--policy", "pomdp:/nonexistent/policy.json"],
    ["simulate", "--policy", "agg:/nonexistent.json"]])
def test_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_simulate_does_not_import_torch():
    import subprocess

    code = ("import sys; from trimpomdp.cli.main import main; "
            "main(['simulate','--policy','thr:0.5','--n','20','--json']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
