"""Tables as Markdown, CSV and fixed-width text, the mean ± sd helpers and the figure set-up."""
import csv
import io

import pytest

from kerascnn.tables import (console_table, csv_text, format_mean_sd, markdown_lines, markdown_table, mean_sd,
                             put_mean_sd)

ROWS = [{"variant": "a", "val_accuracy": 0.5, "note": "x, y"}, {"variant": "b", "val_accuracy": 0.75}]


def test_markdown_table_takes_the_first_rows_columns_and_a_cell_renderer():
    assert markdown_lines(ROWS) == ["| variant | val_accuracy | note |", "|---|---|---|",
                                    "| a | 0.5 | x, y |", "| b | 0.75 |  |"]
    text = markdown_table(ROWS, ["val_accuracy"], cell=lambda row, column: f"{row[column]:.4f}")
    assert text == "| val_accuracy |\n|---|\n| 0.5000 |\n| 0.7500 |\n"


def test_csv_text_quotes_what_needs_it_and_leaves_out_other_keys():
    text = csv_text(ROWS, ["variant", "note"])
    assert text == 'variant,note\na,"x, y"\nb,\n'
    assert list(csv.DictReader(io.StringIO(csv_text(ROWS))))[0] == {"variant": "a", "val_accuracy": "0.5",
                                                                    "note": "x, y"}


def test_console_table_aligns_columns_and_formats_numbers():
    text = console_table([{"name": "conv1", "params": 123456, "share": 0.25, "gone": None}])
    assert text.splitlines() == ["name   params   share   gone", "-----  -------  ------  ----",
                                 "conv1  123,456  0.2500"]
    assert console_table([]) == "(none)"


def test_mean_sd_is_the_sample_deviation_and_absent_for_one_run():
    assert mean_sd([]) == (None, None)
    assert mean_sd([0.5]) == (0.5, None)
    mean, sd = mean_sd([0.5, 0.7])
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1414213, rel=1e-6)
    assert put_mean_sd({}, "acc", [0.5]) == {"acc": 0.5}
    assert set(put_mean_sd({}, "acc", [0.5, 0.7])) == {"acc", "acc_std"}
    assert format_mean_sd(0.71, None) == "0.7100"
    assert format_mean_sd(12.0, 1.25, ".1f") == "12.0 ± 1.2"


def test_save_figure_writes_a_png_atomically_and_closes_the_figure(tmp_path):
    from kerascnn.vis.figure import pyplot, save_figure, save_image

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "sub" / "f.png", dpi=50)
    assert path == tmp_path / "sub" / "f.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)
    assert save_image([[0.0, 1.0], [0.5, 0.25]], tmp_path / "i.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.png", "sub"]
