"""The candidates table of a search (search score, retrain mean ± sd, optimism) and the verdict on its winner,
without TensorFlow, so ``kerascnn report`` can show them without importing KerasTuner."""
from kerascnn.tables import format_mean_sd, mean_sd

def candidate_columns(candidates):
    """The table's columns; ``over_splits`` (the mean over validation splits that chose the winner) only for a
    search with selection splits."""
    chosen_over_splits = ["over_splits"] if any("select_mean" in c for c in candidates) else []
    return ["rank", "trial", "epochs", "search_score", "retrain", "optimism", *chosen_over_splits, "overrides"]


def candidate_rows(candidates):
    rows = []
    for c in candidates:
        row = {"rank": c["rank"], "trial": c["trial"], "epochs": c["epochs"], "search_score": f"{c['search_score']:.4f}",
               "retrain": format_mean_sd(c["retrain_mean"], c["retrain_sd"]), "optimism": f"{c['optimism']:+.4f}"}
        if "select_mean" in c:
            row["over_splits"] = format_mean_sd(c["select_mean"], c["select_sd"])
        rows.append({**row, "overrides": " ".join(c["overrides"])})
    return rows


def write_candidate_tables(project_dir, candidates):
    from kerascnn.io import atomic_write
    from kerascnn.tables import csv_text, markdown_table

    rows, columns = candidate_rows(candidates), candidate_columns(candidates)
    atomic_write(project_dir / "candidates.csv", csv_text(rows, columns))
    atomic_write(project_dir / "candidates.md", markdown_table(rows, columns))


def verdict(winner_mean, winner_sd, hand_mean, hand_sd):
    """"beats" when the winner's mean is ahead of the hand recipe's by more than the seeds' spread (the two
    standard deviations added), "within noise" when it is ahead by less, "does not beat" otherwise; with one
    seed there is no spread to go by, and "beats" needs only the higher mean."""
    if winner_mean <= hand_mean:
        return "does not beat"
    return "beats" if winner_mean - hand_mean > (winner_sd or 0.0) + (hand_sd or 0.0) else "within noise"


def split_check_words(splits):
    """The winner against the hand recipe on the check splits, split by split. Both train on each split, so
    their difference there is paired and free of how hard that split's images are, which the two means'
    spreads mix in; it is a finding when its mean exceeds its own spread over splits."""
    differences = [s["winner"] - s["baseline"] for s in splits]
    mean, sd = mean_sd(differences)
    ahead = sum(d > 0 for d in differences)
    words = f"ahead on {ahead} of {len(differences)}, by {mean:+.4f}"
    if sd is None:
        return words + " (one split, no verdict)"
    found = mean > sd if mean > 0 else False
    return words + f" ± {sd:.4f} split for split ({'a finding' if found else 'not beyond the spread'})"
