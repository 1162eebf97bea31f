"""GLUE's tasks read as distributed, and GLUE's metrics.

Each reader is tested on a small file written in that task's exact layout (first lines
taken from the real files' layouts: CoLA without a header, MRPC with a byte-order mark,
string and float labels, MNLI's two dev files, a QQP row with a missing field, sentences
with a stray ``"``). Each metric is checked against scipy or a hand computation on
hand-made predictions.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import glue_folder, write
from scipy import stats

from dmx.common.errors import UserError
from dmx.data.glue import TASKS, read_split, task_named
from dmx.training.scores import glue_score, metric


def test_cola_has_no_header_and_reads_every_row(tmp_path: Path) -> None:
    path = write(
        tmp_path / "CoLA" / "dev.tsv",
        [
            "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.",
            "gj04\t0\t*\tThe more does Bill smoke, the more Susan hates him.",
            "s_97\t1\t \tWho always drinks milk?",  # a space as the author's mark
        ],
        final_newline=False,  # CoLA's dev.tsv ends without one
    )
    ex = read_split(TASKS["CoLA"], path)
    assert ex.texts == [
        "The sailors rode the breeze clear of the rocks.",
        "The more does Bill smoke, the more Susan hates him.",
        "Who always drinks milk?",
    ]
    assert ex.labels == [1, 0, 1] and ex.pairs is None


def test_mrpc_starts_with_a_byte_order_mark_and_keeps_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "MRPC" / "train.tsv",
        [
            "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            '1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only " the '
            'witness " , Amrozi accused his brother .',
            '0\t2108705\t2108831\t" Yes , it is .\tNo , it is not .',  # a field opening with "
        ],
        bom=True,
    )
    ex = read_split(TASKS["MRPC"], path)
    assert ex.labels == [1, 0]
    assert ex.texts == ["Amrozi accused his brother .", '" Yes , it is .']
    assert ex.pairs == [
        'Referring to him as only " the witness " , Amrozi accused his brother .',
        "No , it is not .",
    ]


@pytest.mark.parametrize(
    ("task", "header", "row", "label"),
    [
        ("RTE", "index\tsentence1\tsentence2\tlabel", "0\tA b.\tC d.\tnot_entailment", 1),
        ("QNLI", "index\tquestion\tsentence\tlabel", "0\tWhat?\tThis.\tentailment", 0),
        ("WNLI", "index\tsentence1\tsentence2\tlabel", "0\tA b.\tC d.\t1", 1),
        ("SST-2", "sentence\tlabel", "it 's a charming journey \t1", 1),
    ],
)
def test_string_and_integer_labels_map_to_the_tasks_class_ids(
    tmp_path: Path, task: str, header: str, row: str, label: int
) -> None:
    ex = read_split(TASKS[task], write(tmp_path / task / "dev.tsv", [header, row]))
    assert ex.labels == [label]
    assert (ex.pairs is not None) == TASKS[task].is_pair


def test_stsb_labels_are_float_scores_in_every_written_form(tmp_path: Path) -> None:
    header = (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    )
    rows = [
        f"{i}\tmain-captions\tMSRvid\t2012test\t{i}\tnone\tnone\tA man.\tA person.\t{score}"
        for i, score in enumerate(["5.000", "3.8", "0.60", "4", "3.59999999999999"])
    ]
    ex = read_split(TASKS["STS-B"], write(tmp_path / "STS-B" / "dev.tsv", [header, *rows]))
    assert ex.labels == [5.0, 3.8, 0.6, 4.0, 3.59999999999999]
    assert TASKS["STS-B"].is_regression


def test_mnli_reads_both_dev_files(tmp_path: Path) -> None:
    header = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
        "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
    )
    task = TASKS["MNLI"]
    assert [f for _, f in task.dev_files] == ["dev_matched.tsv", "dev_mismatched.tsv"]
    labels = {"dev_matched.tsv": "neutral", "dev_mismatched.tsv": "contradiction"}
    for name, label in labels.items():
        row = (
            f"0\t1\t1n\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tA cat.\tA dog.\t{label}\t{label}"
        )
        ex = read_split(task, write(tmp_path / "MNLI" / name, [header, row]))
        assert ex.labels == [task.classes.index(label)] and ex.pairs == ["A dog."]  # type: ignore[union-attr]


def test_qqp_skips_rows_with_missing_fields_and_counts_them(tmp_path: Path) -> None:
    path = write(
        tmp_path / "QQP" / "train.tsv",
        [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "1\t3\t4\tHow do I learn?\tHow can I learn?\t1",
            "2\t5\t6\tWhat is this?",  # a row with missing fields, as QQP has
            "3\t7\t8\tWhy?\tWhy not?\t0",
        ],
    )
    ex = read_split(TASKS["QQP"], path)
    assert ex.labels == [1, 0] and ex.skipped == 1
    assert ex.pairs == ["How can I learn?", "Why not?"]


def test_a_short_row_outside_qqp_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA b."])
    with pytest.raises(UserError) as err:
        read_split(TASKS["RTE"], path)
    assert str(err.value) == (
        f"finetune.glue_dir: {path} line 2 has 2 fields, RTE needs 4; is it RTE's file, "
        "tab-separated?"
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["sentence\tlabel", "good \t2"], "line 2: SST-2's label is one of 0, 1, got '2'"),
        (["text\tlabel", "good \t1"], "has no column 'sentence' (its header: text, label)"),
        (["sentence\tlabel"], "holds no examples"),
    ],
)
def test_a_malformed_file_is_one_line_naming_it(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = write(tmp_path / "SST-2" / "train.tsv", lines)
    with pytest.raises(UserError, match="^finetune.glue_dir: ") as err:
        read_split(TASKS["SST-2"], path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_says_how_the_folder_is_laid_out(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        read_split(TASKS["CoLA"], tmp_path / "CoLA" / "train.tsv")
    assert str(err.value) == (
        f"finetune.glue_dir: CoLA needs {tmp_path / 'CoLA' / 'train.tsv'}, which is missing; "
        "lay the folder out as GLUE's download script does (DIR/<TASK>/train.tsv and dev.tsv)"
    )


def test_task_names_forgive_case_and_hyphens_and_keys_drop_them() -> None:
    assert task_named("sst2") is TASKS["SST-2"] and task_named("sts-b") is TASKS["STS-B"]
    assert [t.key for t in TASKS.values()] == [
        "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli",
    ]  # fmt: skip
    with pytest.raises(UserError, match=r"no GLUE task 'SST3'; choose from CoLA, SST-2, "):
        task_named("SST3")


# --- metrics ---------------------------------------------------------------------------------

PRED = torch.tensor([1, 1, 0, 1, 0, 0, 1, 1, 0, 1])
GOLD = torch.tensor([1, 0, 0, 1, 0, 1, 1, 1, 1, 1])


def test_accuracy_and_f1_of_the_positive_class() -> None:
    tp, fp, fn = 5, 1, 2  # counted by hand from PRED and GOLD
    assert metric("acc", PRED, GOLD, 2) == pytest.approx(7 / 10)
    assert metric("f1", PRED, GOLD, 2) == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_matthews_correlation_by_its_formula() -> None:
    tp, tn, fp, fn = 5, 2, 1, 2
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metric("mcc", PRED, GOLD, 2) == pytest.approx(expected)


def test_pearson_and_spearman_equal_scipys() -> None:
    predicted = torch.tensor([0.1, 2.5, 3.0, 4.9, 1.0, 3.3])
    gold = torch.tensor([0.0, 2.0, 3.8, 5.0, 1.2, 2.6])
    assert metric("pearson", predicted, gold, 1) == pytest.approx(
        stats.pearsonr(predicted.numpy(), gold.numpy()).statistic
    )
    assert metric("spearman", predicted, gold, 1) == pytest.approx(
        stats.spearmanr(predicted.numpy(), gold.numpy()).statistic
    )


def test_glue_score_averages_a_tasks_two_figures_first() -> None:
    figures = {
        "cola": {"mcc": 0.30},
        "mrpc": {"f1": 0.80, "acc": 0.70},  # counts as 0.75
        "stsb": {"pearson": 0.50, "spearman": 0.40},  # counts as 0.45
    }
    assert glue_score(figures) == pytest.approx((0.30 + 0.75 + 0.45) / 3)
    assert math.isnan(glue_score({}))


# --- sentence pairs ---------------------------------------------------------------------------


def test_longest_first_cuts_the_longer_sentence_and_the_second_on_a_tie() -> None:
    from dmx.data.labelled import truncate_longest_first

    a, b = list(range(10)), list(range(100, 104))
    assert truncate_longest_first(a, b, 8) == (list(range(4)), list(range(100, 104)))
    assert truncate_longest_first([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])
    assert truncate_longest_first([1, 2, 3], [4, 5, 6], 5) == ([1, 2, 3], [4, 5])
    assert truncate_longest_first([1], [2], 5) == ([1], [2])  # nothing to cut


def test_a_pair_is_cls_a_sep_b_sep_with_segments_and_padding() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from dmx.data.labelled import collate, encode_pairs
    from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    vocab |= {w: 5 + i for i, w in enumerate("a b c d e f g h".split())}
    assert (PAD_ID, CLS_ID, SEP_ID) == (0, 2, 3)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    ids, types = encode_pairs(["a b", "a b c d e f"], ["c", "g h"], tokenizer, max_len=8)
    assert ids[0].tolist() == [CLS_ID, 5, 6, SEP_ID, 7, SEP_ID, PAD_ID, PAD_ID]
    assert types[0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    # 6 + 2 words into a budget of 8 - 3: the first sentence (longer) gives up its tail
    assert ids[1].tolist() == [CLS_ID, 5, 6, 7, SEP_ID, 11, 12, SEP_ID]
    assert types[1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    batch = collate([{"input_ids": ids[0], "token_types": types[0], "label": torch.tensor(1.5)}])
    assert batch["input_ids"].shape == batch["token_types"].shape == (1, 6)  # cut to its length
    assert batch["label"].dtype == torch.float32


def test_segments_start_at_zero_so_the_pretrained_encoder_computes_what_it_did() -> None:
    from dmx.model import EncoderShape, MaskedLM

    torch.manual_seed(0)
    model = MaskedLM(EncoderShape(64, 1, 16, 2, 32, 16, dropout=0.0)).eval()
    twin = MaskedLM(EncoderShape(64, 1, 16, 2, 32, 16, dropout=0.0)).eval()
    ids = torch.randint(5, 64, (2, 10))
    types = torch.tensor([[0] * 4 + [1] * 6, [0] * 10])
    before, _ = model.encode(ids)
    generator = torch.get_rng_state()
    model.add_segments()
    assert torch.equal(torch.get_rng_state(), generator)  # draws nothing
    assert model.segment is not None and not model.segment.weight.any()
    assert torch.equal(model.encode(ids, token_types=types)[0], before)
    with torch.no_grad():
        model.segment.weight[1] += 0.5
    after, _ = model.encode(ids, token_types=types)
    assert torch.equal(after[1], before[1]) and not torch.equal(after[0], before[0])
    with pytest.raises(ValueError, match="token_types given before add_segments"):
        twin.encode(ids, token_types=types)


# --- fine-tuning on GLUE's tasks ---------------------------------------------------------------


@pytest.mark.slow
def test_a_run_fine_tunes_every_glue_task_and_records_its_metrics_and_the_score(
    tmp_path: Path,
) -> None:
    from helpers import train_run

    folder = glue_folder(tmp_path / "glue")
    summary = train_run(
        tmp_path / "run",
        "finetune=glue",
        f"finetune.glue_dir={folder}",
        "finetune.max_len=32",
        "finetune.epochs=2",
        "finetune.batch_size=8",
        "trainer.max_epochs=1",
    )
    assert summary["status"] == "done"
    assert summary["glue_tasks"] == ["CoLA", "STS-B", "MNLI", "RTE"]  # GLUE's order
    for key in (
        "glue_cola_mcc",
        "glue_stsb_pearson",
        "glue_stsb_spearman",
        "glue_mnli_acc",
        "glue_mnli_mm_acc",
        "glue_rte_acc",
    ):
        assert math.isfinite(summary[key]), key
    for key in ("cola", "stsb", "mnli", "rte"):  # 24 examples in batches of 8, 2 epochs
        assert summary[f"glue_{key}_steps"] == 6
    mnli = summary["glue_mnli_acc"] * 10  # a share of 10 dev examples
    assert 0 <= mnli <= 10 and mnli == pytest.approx(round(mnli))
    expected = (
        summary["glue_cola_mcc"]
        + (summary["glue_stsb_pearson"] + summary["glue_stsb_spearman"]) / 2
        + summary["glue_mnli_acc"]
        + summary["glue_rte_acc"]
    ) / 4
    assert summary["glue_score"] == pytest.approx(expected)


@pytest.mark.slow
def test_a_chosen_subset_is_read_and_a_bad_task_folder_stops_before_pretraining(
    tmp_path: Path,
) -> None:
    from helpers import train_run

    folder = glue_folder(tmp_path / "glue")
    (folder / "RTE" / "dev.tsv").unlink()
    with pytest.raises(UserError) as err:
        train_run(tmp_path / "run", "finetune=glue", f"finetune.glue_dir={folder}")
    assert str(err.value).startswith(f"finetune.glue_dir: RTE needs {folder / 'RTE' / 'dev.tsv'}")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was pretrained
    summary = train_run(
        tmp_path / "run2",
        "finetune=glue",
        f"finetune.glue_dir={folder}",
        "finetune.tasks=[cola]",
        "finetune.max_len=32",
        "trainer.max_epochs=1",
    )
    assert summary["glue_tasks"] == ["CoLA"]
    assert summary["glue_score"] == summary["glue_cola_mcc"]


# --- HuggingFace's copy of GLUE (finetune=glue with no glue_dir), without the network -------


def fake_hub(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, str]]) -> None:
    """``datasets.load_dataset`` answering for nyu-mll/glue from memory, with the hub's own
    columns and ClassLabel names (RTE: entailment=0; MNLI: entailment, neutral,
    contradiction)."""
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    def split(columns: dict[str, list], label: object) -> Dataset:
        features = Features({**{c: Value("string") for c in columns}, "label": label})
        return Dataset.from_dict({**columns, "label": columns.pop("_label")}, features=features)

    def load_dataset(name: str, config: str) -> DatasetDict:
        calls.append((name, config))
        if config == "rte":
            names = ClassLabel(names=["entailment", "not_entailment"])
            make = lambda n: split(  # noqa: E731
                {"sentence1": ["a b"] * n, "sentence2": ["c"] * n, "_label": [0, 1] * (n // 2)},
                names,
            )
            return DatasetDict({"train": make(4), "validation": make(2)})
        if config == "mnli":
            names = ClassLabel(names=["entailment", "neutral", "contradiction"])
            make = lambda n: split(  # noqa: E731
                {"premise": ["a"] * n, "hypothesis": ["b"] * n, "_label": [0, 1, 2] * (n // 3)},
                names,
            )
            return DatasetDict(
                {"train": make(6), "validation_matched": make(3), "validation_mismatched": make(3)}
            )
        if config == "stsb":
            return DatasetDict(
                {
                    s: split(
                        {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "_label": [0.5, 4.25]},
                        Value("float32"),
                    )
                    for s in ("train", "validation")
                }
            )
        raise FileNotFoundError(f"Couldn't reach 'nyu-mll/glue' on the Hub ({config})")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def test_hub_glue_maps_the_hubs_label_names_to_the_same_ids_as_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dmx.data.task_readers import hub_glue_tasks

    calls: list[tuple[str, str]] = []
    fake_hub(monkeypatch, calls)
    rte, mnli, stsb = hub_glue_tasks(["rte", "MNLI", "STS-B"])
    assert calls == [("nyu-mll/glue", "rte"), ("nyu-mll/glue", "mnli"), ("nyu-mll/glue", "stsb")]
    # the TSV reader's ids: RTE (entailment, not_entailment); MNLI sorted by name
    assert rte.classes == ("entailment", "not_entailment") and rte.train_labels == [0, 1, 0, 1]
    assert rte.train_pairs == ["c"] * 4 and rte.glue is not None and rte.glue.key == "rte"
    mnli_ids = [TASKS["MNLI"].classes.index(n) for n in ("entailment", "neutral", "contradiction")]
    assert mnli.train_labels == mnli_ids * 2
    assert [name for name, _ in mnli.more_dev] == ["dev_mm"] and len(mnli.dev_labels) == 3
    assert stsb.regression and stsb.train_labels == [0.5, 4.25]


def test_hub_glue_that_cannot_load_is_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dmx.data.task_readers import hub_glue_tasks

    fake_hub(monkeypatch, [])
    with pytest.raises(UserError) as err:
        hub_glue_tasks(["CoLA"])
    assert str(err.value) == (
        "finetune=glue without glue_dir loads nyu-mll/glue (cola) from the hub, which failed "
        "(https://huggingface.co did not answer, and nyu-mll/glue is not in the HuggingFace "
        "cache); connect, or "
        "give finetune.glue_dir=DIR, the folder GLUE's download script leaves"
    )


# --- a user's own pair task (finetune=tsv with text_pair_column) ----------------------------


def test_a_tsv_pair_task_reads_its_second_column_and_names_a_missing_one(tmp_path: Path) -> None:
    from dmx.config import FinetuneConfig
    from dmx.data.task_readers import load_task

    rows = ["q\tanswer\tgold", "is it red\tit is red\tyes", "is it big\tit is small\tno"]
    train = write(tmp_path / "train.tsv", rows)
    dev = write(tmp_path / "dev.tsv", rows[:2])
    cfg = FinetuneConfig(
        name="tsv",
        train_path=str(train),
        dev_path=str(dev),
        text_column="q",
        text_pair_column="answer",
        label_column="gold",
    )
    task = load_task(cfg)
    assert task.train_texts == ["is it red", "is it big"]
    assert task.train_pairs == ["it is red", "it is small"] and task.dev_pairs == ["it is red"]
    assert task.classes == ("no", "yes") and task.train_labels == [1, 0]
    cfg.text_pair_column = "reply"
    with pytest.raises(UserError) as err:
        load_task(cfg)
    assert str(err.value) == (
        f"finetune.train_path: {train} has no column 'reply' (columns: q, answer, gold); set "
        "finetune.text_pair_column=... to one of them"
    )
