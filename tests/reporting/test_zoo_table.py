"""``fer-pipeline models``: the zoo table against the papers."""

from __future__ import annotations

import json

import pytest

import fer_models
from pipeline.cli import main
from pipeline.reporting.zoo import format_table, zoo_rows


def test_table_lists_every_ean_variant_with_the_papers_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--model", "ean"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ean |")]
    assert [line.split("|")[2].strip() for line in lines] == list(fer_models.model_variants("ean"))
    default = lines[0]
    assert "| 43,840 | 43,840 |" in default and "5.054M | 5.054M | paper" in default
    assert "| 43,822 | 43,822 |" in lines[1]
    assert "| 76,608 | 0.077M | 20.892M | 20.892M |" in out


def test_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--model", "dnn_cbam", "--model", "resatt", "--no-variants", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["variant"]) for r in rows] == [("dnn_cbam", "default"), ("resatt", "default")]
    assert all(r["params"] > 0 and r["flops"] > 0 and r["paper_params"] is None for r in rows)
    assert rows[0]["input_size"] == [1, 48, 48]


def test_every_registered_model_has_a_cfg_with_an_input_size() -> None:
    for name in fer_models.list_models():
        cfg = fer_models.model_default_cfg(name)
        assert len(cfg["input_size"]) == 3, name
        assert "default" in fer_models.model_variants(name), name


def test_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown model"):
        main(["models", "--model", "vgg"])


def test_format_table_marks_missing_paper_figures() -> None:
    table = format_table(zoo_rows(["resatt"], variants=False))
    header, rule, row = table.splitlines()
    assert header.startswith("| model | variant |") and row.startswith("| resatt | default | 1x48x48 |")
    assert row.count("| - |") == 2
