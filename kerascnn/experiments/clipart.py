"""The clip-art assignment's ablation of model C (seed 004, "Babysit your model C") as one study.

``kerascnn experiment clipart.ablation --data-dir ../shared/data/clipart --epochs N`` trains
ClipNet's full recipe (``baseline``) and one variant per question, each changing a single
thing: the optimizer, the pooling, dropout, batch norm, the initialisation, augmentation, the
learning-rate strategy, and the extra techniques (squeeze-excitation, stochastic depth, label
smoothing, and all three together). The table groups the rows by question and gives each
variant's best validation accuracy and its difference from the baseline.
"""
import numpy as np

from kerascnn.experiments import study
from kerascnn.experiments.transfer import transfer_table

# (question, setting, variant name, overrides); the baseline is clipart_own's recipe unchanged:
# Adam 2e-3 with 2 warm-up epochs and cosine decay, max pooling, dropout 0.3, batch norm, He
# normal init, flip/translate/zoom augmentation, squeeze-excitation, stochastic depth 0.1,
# label smoothing 0.1.
ABLATION = [
    ("baseline", "clipart_own recipe", "baseline", []),
    ("optimizer", "SGD momentum 0.9, lr 0.05", "sgd", ["optimizer=sgd", "learning_rate=0.05"]),
    ("pooling", "average pooling", "avg_pool", ["model.pooling=avg"]),
    ("dropout", "no dropout", "no_dropout", ["model.dropout=0.0"]),
    ("batch norm", "no batch norm", "no_batch_norm", ["model.batch_norm=false"]),
    ("initialisation", "Glorot uniform", "init_glorot", ["model.initializer=glorot_uniform"]),
    ("initialisation", "N(0, 0.01)", "init_small_normal", ["model.initializer=small_normal"]),
    ("augmentation", "none", "no_augment", ["augment=[]"]),
    ("lr strategy", "constant, no warm-up", "lr_constant", ["lr_schedule=constant", "warmup_epochs=0"]),
    ("lr strategy", "step: x0.3 every 3 epochs", "lr_step", ["lr_schedule=step", "lr_step_size=3", "lr_gamma=0.3"]),
    ("lr strategy", "reduce on plateau (patience 2, x0.3)", "lr_plateau",
     ["lr_schedule=plateau", "plateau_patience=2", "lr_gamma=0.3"]),
    ("extra technique", "no squeeze-excitation", "no_se", ["model.squeeze_excitation=false"]),
    ("extra technique", "no stochastic depth", "no_stochastic_depth", ["model.stochastic_depth=0.0"]),
    ("extra technique", "no label smoothing", "no_label_smoothing", ["label_smoothing=0.0"]),
    ("extra technique", "none of the three", "no_extras",
     ["model.squeeze_excitation=false", "model.stochastic_depth=0.0", "label_smoothing=0.0"]),
]

def ablation_table(study, study_dir, results, quiet=False):
    """The runner's rows, labelled with the question and setting, plus the change from the baseline."""
    from kerascnn.experiments.runner import summarise

    rows = summarise(results, study)
    labels = {name: (question, setting) for question, setting, name, _ in ABLATION}
    baseline = next((r["val_accuracy"] for r in rows if r["variant"] == "baseline"), np.nan)
    for row in rows:
        row["question"], row["setting"] = labels.get(row["variant"], ("", ""))
        row["delta_val_accuracy"] = float(row["val_accuracy"] - baseline)
    columns = ["question", "setting", "variant", "train_accuracy", "val_accuracy", "delta_val_accuracy",
               "last_val_accuracy", "best_epoch", "epochs_run", "seconds"]
    return {"rows": rows, "columns": columns}


study(
    "clipart.ablation", "clipart_own",
    "model C (ClipNet) ablation: optimizer, pooling, dropout, batch norm, initialisation, augmentation, "
    "LR strategy and the extra techniques, one change from the baseline at a time",
    variants=[(name, overrides) for _, _, name, overrides in ABLATION],
    post=ablation_table,
    # 15 runs of the 40-epoch recipe take about 4 hours here; overnight each gets 12 (the schedule scales).
    reproduce_sets=["epochs=12"],
)


# Model A's starting points on one budget: clipart_resnet50_finetune trains 3 head-only epochs and then
# fine-tunes 6, so every variant gets 9 epochs. The backbone comes from --set model.weights=RUN_DIR (a
# caltech101_resnet50 run offline, or imagenet); "scratch" ignores it (model.pretrained=false) and
# trains model B's way, warm-up and all, for the same 9 epochs. The last variant lets batch norm's
# statistics move to clip art at 96 px, away from the photographs (at 64 px offline) they were learnt on.
study(
    "clipart.transfer", "clipart_resnet50_finetune",
    "model A's starting points on one 9-epoch budget: ResNet-50 from scratch, the pretrained backbone frozen, "
    "fine-tuned from stage 5, fully fine-tuned with batch norm frozen, and fully fine-tuned with batch norm "
    "trained; pass the backbone with "
    "--set model.weights=RUN_DIR|PATH (e.g. a caltech101_resnet50 run)",
    variants=[
        ("scratch", ["model.pretrained=false", "model.train_backbone=true", "fine_tune_epochs=0", "epochs=9",
                     "warmup_epochs=1", "label_smoothing=0.1"]),
        ("frozen", ["fine_tune_epochs=0", "epochs=9"]),
        ("fine_tune_stage5", ["fine_tune_from=conv5_block1_1_conv"]),
        ("fine_tune_all", []),
        ("fine_tune_all_bn", ["fine_tune_batch_norm=true"]),
    ],
    post=transfer_table(test_accuracy=False),
    pretrained_on="caltech101_resnet50",
)
