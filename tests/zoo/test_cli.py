import json

from zoo.cli import main


def test_list_filters_by_pattern(capsys):
    assert main(["list", "*xlstm*"]) == 0
    out = capsys.readouterr().out
    assert "dna-xlstm-small" in out and "prot-xlstm-small" in out and "hybridna-small" not in out


def test_list_shortens_deep_patterns_and_filters_by_domain(capsys):
    assert main(["list", "--domain", "language"]) == 0
    out = capsys.readouterr().out
    assert "m×32" in out and "xlstm-7b" in out and "mamba-130m" in out and "dna-xlstm-small" not in out


def test_info_json_holds_the_full_config(capsys):
    assert main(["info", "hybridna-small", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["pattern"] == "SSSASSSA"
    assert facts["config"]["backbone"]["mixers"]["mamba2"]["d_state"] == 64


def test_unknown_model_exits_2_with_close_matches(capsys):
    assert main(["info", "hyenadna-tinny"]) == 2
    assert "Did you mean: hyenadna-tiny" in capsys.readouterr().err


def test_list_keeps_one_line_per_model_and_cuts_descriptions_to_the_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list", "hyenadna-*"]) == 0
    wide = capsys.readouterr().out
    assert "Official HyenaDNA small-32k" in wide and "hyenadna-medium-450k" in wide
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list", "hyenadna-*"]) == 0
    narrow = capsys.readouterr().out
    assert "hyenadna-medium-450k" in narrow and "zoo info NAME" in narrow
    assert all(len(line) <= 80 for line in narrow.splitlines())
