"""Fine-tuning: the labelled data, the classifier, and runs that pretrain then score a task.

The readers are checked on small hand-made files; the classifier on a tiny encoder whose
outputs can be computed by hand; the assembly by real, shrunk runs in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import train_run

from dmx.common.errors import UserError
from dmx.common.run_folder import read_metrics
from dmx.config import AttentionConfig, FinetuneConfig
from dmx.data.embedded import TOPICS, generate_labelled_documents
from dmx.data.labelled import collate, encode
from dmx.data.task_readers import load_task, read_tsv
from dmx.data.tasks import TASK_SEED_OFFSET, embedded_task
from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, train_tokenizer
from dmx.masking.attention_masks import EVAL_STEP, AttentionPattern
from dmx.model import EncoderShape, MaskedLM
from dmx.run.entry import closing_line as _closing_line
from dmx.training.classify import ClassifierModule, pool


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def tsv_task(tmp_path: Path, train: list[list[str]], dev: list[list[str]], **kw: str):
    header = kw.pop("header", "sentence label").split()
    cfg = FinetuneConfig(
        name="tsv",
        train_path=str(write_tsv(tmp_path / "train.tsv", header, train)),
        dev_path=str(write_tsv(tmp_path / "dev.tsv", header, dev)),
        **kw,
    )
    return load_task(cfg)


# --------------------------------------------------------------------------------------
# Reading labelled data
# --------------------------------------------------------------------------------------


def test_tsv_string_labels_map_to_ids_in_sorted_order(tmp_path: Path) -> None:
    train = [["a fine film", "pos"], ['a "dull" one', "neg"], ["great", "pos"]]
    task = tsv_task(tmp_path, train, [["so dull", "neg"], ["lovely", "pos"]])
    assert task.classes == ("neg", "pos") and task.n_classes == 2
    assert task.train_labels == [1, 0, 1] and task.dev_labels == [0, 1]
    assert task.train_texts[1] == 'a "dull" one'  # quoting off, as GLUE: quotes are text
    assert task.name == "tsv:train.tsv"


def test_tsv_integer_labels_sort_numerically_with_three_classes(tmp_path: Path) -> None:
    """10 after 2 (not lexically before it); "02" in dev is the class 2."""
    header = "idx label sentence"
    train = [["0", "10", "x"], ["1", "2", "y"], ["2", "0", "z"], ["3", "2", "w"]]
    task = tsv_task(tmp_path, train, [["0", "02", "v"], ["1", "10", "u"]], header=header)
    assert task.classes == ("0", "2", "10")
    assert task.train_labels == [2, 1, 0, 1] and task.dev_labels == [1, 2]
    assert task.train_texts == ["x", "y", "z", "w"]


def test_tsv_custom_columns(tmp_path: Path) -> None:
    rows = [["b", "hi there"], ["a", "bye now"]]
    task = tsv_task(tmp_path, rows, rows, header="y text", text_column="text", label_column="y")
    assert task.train_texts == ["hi there", "bye now"] and task.train_labels == [1, 0]


def test_tsv_missing_column_names_the_columns_found(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        tsv_task(tmp_path, [["a", "1"]], [["b", "0"]], header="text label")
    assert str(err.value) == (
        f"finetune.train_path: {tmp_path / 'train.tsv'} has no column 'sentence' (columns: "
        "text, label); set finetune.text_column=... to one of them"
    )


def test_tsv_single_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        tsv_task(tmp_path, [["a", "pos"], ["b", "pos"]], [["c", "pos"]])
    assert str(err.value) == (
        "finetune task tsv:train.tsv: the training split has a single class ('pos'); a "
        "classifier needs at least 2 classes; check finetune.label_column and that dev and "
        "train label the same classes"
    )


def test_tsv_dev_label_unseen_in_training_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dev split has label\(s\) never seen in training "):
        tsv_task(tmp_path, [["a", "pos"], ["b", "neg"]], [["c", "neutral"]])


def test_tsv_missing_empty_and_ragged_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^finetune.train_path: no such file .*nope.tsv; give"):
        read_tsv(tmp_path / "nope.tsv", "sentence", "label")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(UserError, match=r"empty.tsv is empty; it needs a header row naming"):
        read_tsv(tmp_path / "empty.tsv", "sentence", "label", "dev_path")
    write_tsv(tmp_path / "head.tsv", ["sentence", "label"], [])
    with pytest.raises(UserError, match=r"has a header row but no examples"):
        read_tsv(tmp_path / "head.tsv", "sentence", "label")
    (tmp_path / "ragged.tsv").write_text("sentence\tlabel\nok\t1\nno tab here\n")
    with pytest.raises(UserError, match=r"line 3 has 1 fields, fewer than its header's 2"):
        read_tsv(tmp_path / "ragged.tsv", "sentence", "label")


def test_hf_task_reads_splits_and_says_what_to_do_when_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in for the datasets package: no network, no download."""

    class Split(dict):
        @property
        def column_names(self) -> list[str]:
            return list(self)

    def load_dataset(name: str, config: str | None) -> dict[str, Split]:
        if name != "glue":
            raise ConnectionError("Couldn't reach the Hub")
        return {
            "train": Split(sentence=["good", "bad", "fine"], label=[1, 0, 1]),
            "validation": Split(sentence=["ok"], label=[1]),
        }

    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    task = load_task(FinetuneConfig(name="hf", hf_name="glue", hf_config="sst2"))
    assert (task.name, task.classes, task.train_labels, task.dev_labels) == (
        "hf:glue/sst2",
        ("0", "1"),
        [1, 0, 1],
        [1],
    )
    with pytest.raises(UserError) as err:
        load_task(FinetuneConfig(name="hf", hf_name="nowhere"))
    assert str(err.value).startswith(
        "cannot load hub dataset nowhere (https://huggingface.co did not answer, and nowhere is "
        "not in the HuggingFace cache)"
    )
    assert "or use finetune=tsv finetune.train_path=TRAIN.tsv" in str(err.value)
    with pytest.raises(UserError, match=r"has no split 'test' \(splits: train, validation\)"):
        load_task(FinetuneConfig(name="hf", hf_name="glue", dev_split="test"))


def test_embedded_task_is_topic_classification_on_first_sentences() -> None:
    task = embedded_task(n_train=400, n_dev=100, corpus_seed=3)
    assert task.n_classes == 16 and task.classes == tuple(sorted(TOPICS))
    assert (len(task.train_texts), len(task.dev_texts)) == (400, 100)
    assert len(task.train_labels) == 400 and len(task.dev_labels) == 100
    docs = generate_labelled_documents(TASK_SEED_OFFSET + 3, 500)
    for i in (0, 250, 499):
        topic, text = docs[i]
        sentence = (task.train_texts + task.dev_texts)[i]
        assert text.startswith(sentence) and sentence.endswith(" .")
        assert sentence.count(" . ") == 0  # one sentence
        assert task.classes[(task.train_labels + task.dev_labels)[i]] == topic
    # Never the pretraining documents: those are generated from corpus_seed itself.
    pretraining = {text for _, text in generate_labelled_documents(3, 500)}
    assert not pretraining & {text for _, text in docs}


def test_encode_wraps_in_cls_sep_truncates_and_collate_trims_padding() -> None:
    tokenizer = train_tokenizer(["the goat eats the grass", "a ship sails"], vocab_size=64)
    ids = encode(["the goat", "the goat eats the grass the goat eats the grass"], tokenizer, 8)
    assert ids.shape == (2, 8)
    assert ids[0, 0] == CLS_ID and ids[1, 0] == CLS_ID and ids[1, -1] == SEP_ID
    n = int((ids[0] != PAD_ID).sum())
    assert ids[0, n - 1] == SEP_ID and (ids[0, n:] == PAD_ID).all()
    batch = collate([{"input_ids": ids[0], "label": torch.tensor(1)}])
    assert batch["input_ids"].shape == (1, n) and batch["attention_mask"].all()
    assert batch["label"].tolist() == [1]


# --------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------


def tiny_encoder(gate: bool = False) -> MaskedLM:
    torch.manual_seed(0)
    shape = EncoderShape(
        vocab_size=32,
        n_layers=1,
        d_model=8,
        n_heads=2,
        d_ff=16,
        max_seq_len=16,
        dropout=0.0,
        gate=gate,
    )
    return MaskedLM(shape).eval()


def identity_head(encoder: MaskedLM, pooling: str, pattern: str = "full") -> ClassifierModule:
    """A classifier whose logits are the pooled vector itself."""
    cfg = FinetuneConfig(name="embedded", pooling=pooling, dropout=0.0)
    module = ClassifierModule(encoder, 8, cfg, AttentionConfig(pattern=pattern)).eval()
    with torch.no_grad():
        module.head.weight.copy_(torch.eye(8))
        module.head.bias.zero_()
    return module


def test_pool_by_hand() -> None:
    hidden = torch.arange(12.0).view(1, 4, 3)  # rows [0 1 2] [3 4 5] [6 7 8] [9 10 11]
    padding = torch.tensor([[True, True, True, False]])
    assert pool(hidden, padding, "cls").tolist() == [[0.0, 1.0, 2.0]]
    assert pool(hidden, padding, "mean").tolist() == [[3.0, 4.0, 5.0]]


@torch.no_grad()
def test_cls_and_mean_pooling_equal_the_unpadded_sentence_by_hand() -> None:
    """Padded or not, the pooled vector is the hand-computed one from the real tokens."""
    encoder = tiny_encoder()
    ids = torch.tensor([[CLS_ID, 7, 9, 11, SEP_ID, PAD_ID, PAD_ID]])
    padding = ids != PAD_ID
    hidden, _ = encoder.encode(ids[:, :5])  # the sentence alone, no padding at all
    cls = identity_head(encoder, "cls")(ids, padding)[0]
    mean = identity_head(encoder, "mean")(ids, padding)[0]
    torch.testing.assert_close(cls, hidden[:, 0])
    torch.testing.assert_close(mean, hidden[0].mean(dim=0, keepdim=True))
    assert not torch.allclose(cls, mean)


@torch.no_grad()
def test_the_attention_pattern_applies_to_the_classifier() -> None:
    """Same weights, different patterns, different outputs; random_dynamic is keyed by the
    step in training and scored under one fixed draw."""
    encoder = tiny_encoder()
    ids = torch.tensor([[CLS_ID, 5, 6, 7, 8, 9, 10, SEP_ID]])
    padding = ids != PAD_ID
    full = identity_head(encoder, "mean")(ids, padding)[0]
    causal = identity_head(encoder, "mean", "causal")(ids, padding)[0]
    assert not torch.allclose(full, causal)
    dynamic = identity_head(encoder, "mean", "random_dynamic")
    at = {step: dynamic(ids, padding, step)[0] for step in (0, 1, EVAL_STEP)}
    assert not torch.allclose(at[0], at[1]) and not torch.allclose(at[0], full)
    torch.testing.assert_close(dynamic(ids, padding)[0], at[EVAL_STEP])  # the default: eval


def test_dev_metrics_over_the_whole_split_by_hand() -> None:
    """Accuracy over examples; precision, recall and F1 per class, then averaged.

    Per class (target, prediction): class 0 has tp 2, fn 1 (P 1, R 2/3, F1 0.8); class 1
    tp 1, fp 1, fn 1 (P R F1 0.5); class 2 tp 1, fp 1 (P 0.5, R 1, F1 2/3). Two batches,
    so a mean of batch scores would differ.
    """
    module = ClassifierModule(tiny_encoder(), 3, FinetuneConfig(name="embedded"))
    batches = [([0, 0, 0], [0, 0, 1]), ([1, 1, 2], [1, 2, 2])]
    for target, prediction in batches:
        for metric in module.dev_metrics.values():
            metric.update(torch.tensor(prediction), torch.tensor(target))
    scores = {name: float(m.compute()) for name, m in module.dev_metrics.items()}
    assert scores == pytest.approx(
        {
            "acc": 4 / 6,
            "precision": (1 + 0.5 + 0.5) / 3,
            "recall": (2 / 3 + 0.5 + 1) / 3,
            "f1": (0.8 + 0.5 + 2 / 3) / 3,
        }
    )


def test_the_mlm_head_is_frozen_and_the_encoder_shared() -> None:
    encoder = tiny_encoder()
    module = ClassifierModule(encoder, 3, FinetuneConfig(name="embedded"))
    assert module.encoder is encoder
    assert not encoder.head_bias.requires_grad
    assert not any(p.requires_grad for p in encoder.head_transform.parameters())
    assert encoder.tok.weight.requires_grad and module.head.weight.requires_grad


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


class DevPredictions:
    """What the classifier predicted on the dev split, and the labels, per validation pass.

    Taken from the logits the module's forward returns inside ``validation_step`` and the
    batch's labels, not from the metrics, so the summary's scores can be recomputed from them.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.passes: list[tuple[list[int], list[int]]] = []
        self._in_dev = False
        forward, validation_step = ClassifierModule.forward, ClassifierModule.validation_step
        epoch_start = ClassifierModule.on_validation_epoch_start

        def spy_forward(module: ClassifierModule, *args, **kwargs):
            logits, gate = forward(module, *args, **kwargs)
            if self._in_dev:
                self.passes[-1][0].extend(logits.argmax(dim=-1).tolist())
            return logits, gate

        def spy_step(module: ClassifierModule, batch: dict, batch_idx: int) -> None:
            self.passes[-1][1].extend(batch["label"].tolist())
            self._in_dev = True
            try:
                validation_step(module, batch, batch_idx)
            finally:
                self._in_dev = False

        def spy_start(module: ClassifierModule) -> None:
            self.passes.append(([], []))
            epoch_start(module)

        monkeypatch.setattr(ClassifierModule, "forward", spy_forward)
        monkeypatch.setattr(ClassifierModule, "validation_step", spy_step)
        monkeypatch.setattr(ClassifierModule, "on_validation_epoch_start", spy_start)

    def scores(self) -> dict[str, float]:
        """The last pass's accuracy (micro) and macro precision, recall and F1 over the
        classes that occur in its labels or predictions, by hand."""
        predicted, labels = self.passes[-1]
        assert len(predicted) == len(labels) > 0
        per_class = []
        for c in sorted(set(labels) | set(predicted)):
            tp = sum(p == c == t for p, t in zip(predicted, labels, strict=True))
            n_predicted, n_true = predicted.count(c), labels.count(c)
            precision = tp / n_predicted if n_predicted else 0.0
            recall = tp / n_true if n_true else 0.0
            f1 = 2 * tp / (n_predicted + n_true)
            per_class.append((precision, recall, f1))
        return {
            "finetune_acc": sum(p == t for p, t in zip(predicted, labels, strict=True))
            / len(labels),
            **{
                f"finetune_{name}": sum(row[i] for row in per_class) / len(per_class)
                for i, name in enumerate(("precision", "recall", "f1"))
            },
        }


def assert_scores_match_the_predictions(summary: dict, dev: DevPredictions) -> None:
    expected = dev.scores()
    assert {k: summary[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    assert len(dev.passes[-1][1]) == summary["finetune_dev_examples"]


@pytest.mark.slow
def test_a_run_pretrains_then_writes_the_finetune_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scores written are those of the last dev pass's predictions, over all 200."""
    dev = DevPredictions(monkeypatch)
    run = tmp_path / "r"
    summary = train_run(run, "finetune=embedded", "finetune.epochs=1")
    assert read_metrics(run) == summary
    assert summary["status"] == "done" and summary["pretrained"] is True
    assert summary["epochs"] == 2 and summary["final_val_loss"] is not None
    assert_scores_match_the_predictions(summary, dev)
    assert summary["finetune_task"] == "embedded" and summary["finetune_classes"] == 16
    assert (summary["finetune_train_examples"], summary["finetune_dev_examples"]) == (800, 200)
    assert summary["finetune_steps"] == 25  # 800 examples in batches of 32, one epoch
    assert "; embedded: dev acc " in _closing_line(summary, run)
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "checkpoints",
        "config.yaml",
        "encoder.pt",
        "encoder_best.pt",
        "finetune",
        "history.csv",
        "metrics.json",
    ]  # no logger folders from the second Trainer
    cell = json.loads((run / "finetune" / "embedded" / "lr=0.0005,seed=0.json").read_text())
    assert cell["best"]["acc"] == summary["finetune_acc"] and cell["best_epoch"] == 1


@pytest.mark.slow
def test_max_epochs_0_skips_pretraining_and_still_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained from the encoder's initialisation; the pattern is keyed as in pretraining."""
    steps: list[int] = []
    allowed = AttentionPattern.allowed

    def spy(self: AttentionPattern, length: int, device: torch.device, step: int = 0):
        steps.append(step)
        return allowed(self, length, device, step)

    monkeypatch.setattr(AttentionPattern, "allowed", spy)
    dev = DevPredictions(monkeypatch)
    run = tmp_path / "scratch"
    summary = train_run(
        run,
        "finetune=embedded",
        "finetune.epochs=1",
        "trainer.max_epochs=0",
        "attention=random_dynamic",
    )
    assert summary["status"] == "done" and summary["pretrained"] is False
    assert summary.get("final_val_loss") is None and "steps" not in summary
    assert not (run / "history.csv").exists()
    assert summary["finetune_classes"] == 16
    assert_scores_match_the_predictions(summary, dev)
    assert summary["precision"] == "32-true" and summary["parameters"] > 0
    assert steps == [*range(25), *[EVAL_STEP] * 7]  # 25 training steps, 7 dev batches
    line = _closing_line(summary, run)
    assert line.startswith("done: static(K=1), no pretraining; embedded: dev acc ")


@pytest.mark.slow
def test_a_trivially_separable_task_is_learned_perfectly(tmp_path: Path) -> None:
    """The label is one word of the sentence: a classifier from scratch must get it all."""
    fillers = ["the", "was", "near", "and", "she", "his", "a", "in"]
    rows = []
    for i in range(96):
        words = [fillers[(i * 7 + k) % len(fillers)] for k in range(5)]
        words.insert(i % 5, "goat" if i % 2 else "anchor")
        rows.append([" ".join(words), "animal" if i % 2 else "ship"])
    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], rows[:64])
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], rows[64:])
    summary = train_run(
        tmp_path / "toy",
        "finetune=tsv",
        f"finetune.train_path={train}",
        f"finetune.dev_path={dev}",
        "trainer.max_epochs=0",
        "finetune.lrs=[3e-3]",
        "finetune.epochs=8",
        "finetune.batch_size=8",
        "finetune.pooling=mean",
    )
    assert summary["finetune_task"] == "tsv:train.tsv" and summary["finetune_classes"] == 2
    assert (summary["finetune_acc"], summary["finetune_f1"]) == (1.0, 1.0)


@pytest.mark.slow
def test_a_fault_in_finetuning_fails_the_run_after_pretraining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: ClassifierModule, batch: dict, batch_idx: int) -> torch.Tensor:
        raise RuntimeError("classifier exploded")

    monkeypatch.setattr(ClassifierModule, "training_step", boom)
    run = tmp_path / "fault"
    with pytest.raises(RuntimeError, match="classifier exploded"):
        train_run(run, "finetune=embedded", "trainer.max_epochs=1")
    metrics = read_metrics(run)
    assert (metrics["status"], metrics["error"]) == ("failed", "RuntimeError: classifier exploded")
    assert metrics["final_val_loss"] is not None and "finetune_acc" not in metrics


@pytest.mark.slow
def test_a_nan_finetuning_loss_fails_the_run_with_the_step(tmp_path: Path) -> None:
    run = tmp_path / "nan"
    with pytest.raises(FloatingPointError):
        train_run(
            run,
            "finetune=embedded",
            "trainer.max_epochs=0",
            "finetune.lrs=[1e30]",
            "finetune.warmup_frac=0",
        )
    assert read_metrics(run)["error"].startswith("FloatingPointError: fine-tuning loss is ")


def test_a_bad_task_fails_before_pretraining(tmp_path: Path) -> None:
    header = ["sentence", "label"]
    train = write_tsv(tmp_path / "t.tsv", header, [["a", "x"], ["b", "x"]])
    run = tmp_path / "bad"
    with pytest.raises(UserError, match="single class"):
        train_run(run, "finetune=tsv", f"finetune.train_path={train}", f"finetune.dev_path={train}")
    assert not (run / "metrics.json").exists()  # read before the run folder was opened
    assert not (run / "history.csv").exists()  # no pretraining was spent on it


def test_learned_gate_adds_its_density_penalty_to_the_loss() -> None:
    """The same penalty as in pretraining: gate_penalty x (mean gate - density)^2."""
    encoder = tiny_encoder(gate=True)
    ids = torch.tensor([[CLS_ID, 5, 6, 7, SEP_ID, PAD_ID]])
    batch = {"input_ids": ids, "attention_mask": ids != PAD_ID, "label": torch.tensor([2])}
    losses = {}
    for weight in (0.0, 10.0):
        attention = AttentionConfig(pattern="learned_gate", density=0.3, gate_penalty=weight)
        cfg = FinetuneConfig(name="embedded", dropout=0.0)
        torch.manual_seed(1)  # the same head for both, so only the penalty differs
        module = ClassifierModule(encoder, 3, cfg, attention)
        module.log = lambda *args, **kwargs: None  # no Trainer to log to
        losses[weight] = module.training_step(batch, 0)
    _, gate_mean = encoder.encode(ids, ids != PAD_ID)
    assert gate_mean is not None
    torch.testing.assert_close(losses[10.0] - losses[0.0], 10.0 * (gate_mean - 0.3) ** 2)
