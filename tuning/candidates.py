"""The candidates table of a search (search score, retrain mean ± sd, optimism) and the verdict on its winner,
without TensorFlow, so ``kerascnn report`` can show them without importing KerasTuner."""
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


def verdict(winner_mean, winner_sd, hand_mean, hand_sd):
    """"beats" when the winner's mean is ahead of the hand recipe's by more than the seeds' spread (the two
    standard deviations added), "within noise" when it is ahead by less, "does not beat" otherwise; with one
    seed there is no spread to go by, and "beats" needs only the higher mean."""
    if winner_mean <= hand_mean:
        return "does not beat"
    return "beats" if winner_mean - hand_mean > (winner_sd or 0.0) + (hand_sd or 0.0) else "within noise"
