"""The candidates table of a search (search score, retrain mean ± sd, optimism), without TensorFlow, so
``kerascnn report`` can show it without importing KerasTuner."""
from kerascnn.tables import format_mean_sd

CANDIDATE_COLUMNS = ["rank", "trial", "epochs", "search_score", "retrain", "optimism", "overrides"]


def candidate_rows(candidates):
    return [{"rank": c["rank"], "trial": c["trial"], "epochs": c["epochs"], "search_score": f"{c['search_score']:.4f}",
             "retrain": format_mean_sd(c["retrain_mean"], c["retrain_sd"]), "optimism": f"{c['optimism']:+.4f}",
             "overrides": " ".join(c["overrides"])} for c in candidates]


def write_candidate_tables(project_dir, candidates):
    from kerascnn.io import atomic_write
    from kerascnn.tables import csv_text, markdown_table

    rows = candidate_rows(candidates)
    atomic_write(project_dir / "candidates.csv", csv_text(rows, CANDIDATE_COLUMNS))
    atomic_write(project_dir / "candidates.md", markdown_table(rows, CANDIDATE_COLUMNS))
