"""Each plot says something: equal series drawn once with both names, no empty plots, a KL that is off
says so, and integer step ticks."""

import json

from grpo.plots import PLOTS, plot_series, write_plots


def test_series_with_equal_values_are_drawn_once_with_both_names():
    rows = [{"step": 1, "reward/mean": 0.5, "reward/accuracy": 0.5}, {"step": 2, "reward/mean": 0.75,
                                                                       "reward/accuracy": 0.75}]
    series = plot_series(rows, ["reward/accuracy", "reward/mean"], ["reward/mean", "reward/accuracy"])
    assert [keys for keys, _ in series] == [["reward/mean", "reward/accuracy"]]
    rows[1]["reward/mean"] = 0.7  # shaped rewards: two lines
    series = plot_series(rows, ["reward/accuracy", "reward/mean"], ["reward/mean", "reward/accuracy"])
    assert [keys for keys, _ in series] == [["reward/mean"], ["reward/accuracy"]]
    eval_rows = [{"step": 5, "eval/pass@1": 0.4, "eval/maj@1": 0.4, "eval/pass@4": 0.8, "eval/maj@4": 0.6,
                  "eval/pass@1_ci_low": 0.3, "eval/pass@1_ci_high": 0.5}]
    names = sorted(k for k in eval_rows[0] if "_ci_" not in k and k != "step")
    series = plot_series(eval_rows, names, ["eval/pass@*", "eval/maj@*"])
    assert [keys for keys, _ in series] == [["eval/pass@1", "eval/maj@1"], ["eval/pass@4"], ["eval/maj@4"]]
    assert series[0][1] == [(5, 0.4, 0.3, 0.5)]


def test_plots_without_data_are_not_written(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/mean": 1.0, "reward/accuracy": 1.0,
                                                        "loss/kl": 0.0, "completion/length_mean": 7.0}) + "\n")
    written = {p.name for p in write_plots(tmp_path)}
    assert written == {"reward.png", "kl.png", "length.png"}  # no held-out or entropy data: no empty plots
    assert set(PLOTS) > written
    for name in written:
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
