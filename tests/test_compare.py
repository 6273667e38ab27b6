"""`python -m scripts.experiments compare` (scripts/experiments/compare.py) and scripts/hf_baseline.py on the
tiny BERT: the HF baseline learns and is scored on the gold tokens, and the harness trains
every system with the shared budget, tabulates seeds, resumes and reports failures."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.util import load_config
from typer.testing import CliRunner

from scripts.experiments import compare
from scripts.experiments.cli import app

from conftest import ROOT, make_docs, write_docbin

runner = CliRunner()


def invoke(args):
    """`python -m scripts.experiments compare ARGS` from the project's folder (definition paths
    and the `script` systems' modules are relative to it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        return runner.invoke(app, ["compare", *args])


def run_hf(*args):
    """`python -m scripts.hf_baseline ARGS` from the checkout's root."""
    command = [sys.executable, "-m", "scripts.hf_baseline", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


DEFINITION = """
epochs: 1
seeds: [0, 1]
warmup_share: 0.5
systems:
  pos_ner:
    config: configs/pos_ner.cfg
    all_seeds: true
  no_pos:
    config: configs/pos_ner.cfg
    overrides:
      components.ner.model.feature_width: 0
  sentences:
    config: configs/pos_ner.cfg
    corpus: sentences
  hf_trainer:
    script: scripts.hf_baseline
    args:
      learning_rate: 0.001
      batch_size: 8
"""


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Folders of train/dev/test.spacy: whole documents, and the same split into sentences."""
    root = tmp_path_factory.mktemp("compare_corpus")
    splits = {"train": make_docs(16, seed=1), "dev": make_docs(4, seed=2), "test": make_docs(4, seed=3)}
    for kind in ("documents", "sentences"):
        (root / kind).mkdir()
        for split, docs in splits.items():
            if kind == "sentences":
                docs = [sent.as_doc() for doc in docs for sent in doc.sents]
            write_docbin(root / kind / f"{split}.spacy", docs)
    return root


FIRST_SUBWORDS = """
import json, sys
from transformers import AutoTokenizer
from scripts import hf_baseline as hf
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
encoding, first = hf.encode(tokenizer, ["Anna", "xyzzy", "Paris"], max_length=64)
_, truncated = hf.encode(tokenizer, ["Anna", "xyzzy", "Paris"], max_length=4)
print(json.dumps({"word_ids": encoding.word_ids(), "first": first, "truncated": truncated}))
"""


def test_first_subword_alignment(tiny_bert):
    # `python -c` imports from its working directory: the checkout's root.
    result = subprocess.run(
        [sys.executable, "-c", FIRST_SUBWORDS, str(tiny_bert)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    first, word_ids = out["first"], out["word_ids"]
    assert [word_ids[p] for p in first] == [0, 1, 2]
    assert first[1] + 1 < first[2], "xyzzy is several wordpieces; only the first one is labelled"
    truncated = out["truncated"]
    assert truncated[-1] is None and truncated[0] is not None


@pytest.mark.slow
def test_hf_baseline_learns_and_scores_gold_tokens(tiny_bert, toy_corpus, tmp_path):
    train, dev = toy_corpus
    model_dir = tmp_path / "hf"
    result = run_hf(
        "train",
        tiny_bert,
        train,
        model_dir,
        "--epochs",
        "30",
        "--learning-rate",
        "0.003",
        "--batch-size",
        "8",
        "--gpu",
        "-1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    labels = set(json.loads((model_dir / "config.json").read_text())["id2label"].values())
    assert labels == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    output = tmp_path / "dev.json"
    result = run_hf("evaluate", model_dir, dev, "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(output.read_text())
    gold_docs = list(DocBin().from_disk(dev).get_docs(__import__("spacy").blank("en").vocab))
    assert metrics["n_words"] == sum(len(doc) for doc in gold_docs)
    assert metrics["n_docs"] == len(gold_docs) and metrics["n_words_truncated"] == 0
    assert metrics["entities"]["micro"]["support"] == sum(len(doc.ents) for doc in gold_docs)
    assert metrics["entities"]["micro"]["f1-score"] > 0.8
    assert metrics["words_per_second"] > 0


def test_runs_are_seed_major_and_filtered():
    definition = {"seeds": [0, 1, 2], "systems": {"a": {"all_seeds": True}, "b": {}}}
    assert compare.runs(definition, None) == [
        {"system": "a", "seed": 0},
        {"system": "b", "seed": 0},
        {"system": "a", "seed": 1},
        {"system": "a", "seed": 2},
    ]
    assert compare.runs(definition, ["b"]) == [{"system": "b", "seed": 0}]
    assert compare.runs(definition, None, seeds=[1]) == [{"system": "a", "seed": 1}]
    with pytest.raises(Exception, match="unknown systems"):
        compare.runs(definition, ["c"])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, tiny_bert, corpora):
    folder = tmp_path_factory.mktemp("compare")
    definition = folder / "compare.yml"
    definition.write_text(DEFINITION, encoding="utf8")
    args = [
        str(definition),
        "--transformer",
        str(tiny_bert),
        "--corpus",
        str(corpora / "documents"),
        "--sentences",
        str(corpora / "sentences"),
        "--workdir",
        str(folder / "runs"),
        "--output",
        str(folder / "compare.json"),
        "--gpu",
        "-1",
    ]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return folder, args, result.output


@pytest.mark.slow
def test_every_system_and_seed_is_trained_and_tabulated(comparison):
    folder, _, output = comparison
    report = json.loads((folder / "compare.json").read_text())
    assert [(r["system"], r["seed"]) for r in report["runs"]] == [
        ("pos_ner", 0),
        ("no_pos", 0),
        ("sentences", 0),
        ("hf_trainer", 0),
        ("pos_ner", 1),
    ]
    for run in report["runs"]:
        assert 0 <= run["test_f1"] <= 1 and 0 <= run["dev_f1"] <= 1
        assert run["train_minutes"] > 0 and run["train_words_per_second"] > 0
        assert run["inference_words_per_second"] > 0
    rows = {row["system"]: row for row in report["systems"]}
    assert rows["pos_ner"]["seeds"] == [0, 1] and rows["pos_ner"]["test_f1"]["stdev"] is not None
    assert rows["no_pos"]["test_f1"]["stdev"] is None
    f1s = [r["test_f1"] for r in report["runs"] if r["system"] == "pos_ner"]
    assert rows["pos_ner"]["test_f1"]["mean"] == pytest.approx(sum(f1s) / 2)
    markdown = (folder / "compare.md").read_text()
    assert markdown in output
    assert [line.split(" | ")[0].strip("| ") for line in markdown.splitlines()[2:6]] == [
        "pos_ner",
        "no_pos",
        "sentences",
        "hf_trainer",
    ]


@pytest.mark.slow
def test_spacy_runs_get_the_shared_budget_and_their_overrides(comparison, corpora):
    folder, _, _ = comparison
    steps = compare.steps_per_epoch(ROOT / "configs" / "pos_ner.cfg", corpora / "documents" / "train.spacy")
    config = load_config(folder / "runs" / "pos_ner-seed1" / "model-last" / "config.cfg")
    assert config["system"]["seed"] == 1
    assert config["training"]["max_epochs"] == 1 and config["training"]["max_steps"] == 0
    assert config["training"]["optimizer"]["learn_rate"]["total_steps"] == steps
    assert config["training"]["optimizer"]["learn_rate"]["warmup_steps"] == round(steps * 0.5)
    assert config["components"]["ner"]["model"]["feature_width"] == 64
    no_pos = load_config(folder / "runs" / "no_pos-seed0" / "model-last" / "config.cfg")
    assert no_pos["components"]["ner"]["model"]["feature_width"] == 0
    sentences = load_config(folder / "runs" / "sentences-seed0" / "model-last" / "config.cfg")
    assert sentences["paths"]["train"] == str((corpora / "sentences" / "train.spacy").resolve())
    test = json.loads((folder / "runs" / "sentences-seed0" / "test.json").read_text())
    assert test["n_docs"] == sum(1 for doc in make_docs(4, seed=3) for _ in doc.sents)


@pytest.mark.slow
def test_finished_runs_are_not_trained_again(comparison):
    folder, args, _ = comparison
    logs = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/train.log")}
    before = json.loads((folder / "compare.json").read_text())
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert result.output.count("done before, kept") == 5
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
    assert json.loads((folder / "compare.json").read_text())["runs"] == before["runs"]


@pytest.mark.slow
def test_a_result_moved_away_during_a_comparison_is_not_run_never_trained(comparison, tmp_path, monkeypatch):
    """Only the selected runs train: an unselected run whose result leaves the
    workdir while the comparison runs is reported as not run."""
    folder, args, _ = comparison
    workdir = tmp_path / "runs"
    shutil.copytree(folder / "runs", workdir)
    moved = workdir / "pos_ner-seed1" / "result.json"
    original = compare.run_one

    def move_then_run(*a, **kw):
        moved.unlink(missing_ok=True)
        return original(*a, **kw)

    monkeypatch.setattr(compare, "run_one", move_then_run)
    result = invoke([*with_output(args, tmp_path / "compare.json", workdir), "--only", "no_pos", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "pos_ner-seed1: training" not in result.output and not moved.exists()
    report = json.loads((tmp_path / "compare.json").read_text())
    assert {"system": "pos_ner", "seed": 1} in report["not_run"]
    assert sorted((r["system"], r["seed"]) for r in report["runs"]) == [
        ("hf_trainer", 0),
        ("no_pos", 0),
        ("pos_ner", 0),
        ("sentences", 0),
    ]


@pytest.mark.slow
def test_report_only_tabulates_finished_runs_and_trains_nothing(comparison, tmp_path):
    folder, args, _ = comparison
    logs = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/train.log")}
    output = tmp_path / "report.json"
    args = [*args[: args.index("--output")], "--output", str(output), *args[args.index("--output") + 2 :]]
    result = invoke([*args, "--seed", "1", "--report-only"])
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    # A selection restricts what trains, never what the table shows.
    assert len(report["runs"]) == 5 and report["not_run"] == []
    assert {row["system"]: row["seeds"] for row in report["systems"]}["pos_ner"] == [0, 1]
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
    # Runs recorded in the output report are restored (see the tests below); here
    # a run missing from the workdir must also be missing from the report.
    output.unlink()
    (folder / "runs" / "pos_ner-seed1" / "result.json").rename(tmp_path / "kept.json")
    try:
        result = invoke([*args, "--report-only"])
        assert result.exit_code == 0, result.output
        report = json.loads(output.read_text())
        assert report["not_run"] == [{"system": "pos_ner", "seed": 1}] and len(report["runs"]) == 4
        assert "not run yet (1): pos_ner-seed1" in result.output
    finally:
        (tmp_path / "kept.json").rename(folder / "runs" / "pos_ner-seed1" / "result.json")
    # Only the finished runs' corpora must exist (their recipes are checked
    # against them): with the sentences run not finished, no sentences corpus is needed.
    absent = [*args]
    absent[absent.index("--sentences") + 1] = str(tmp_path / "absent")
    sentences_result = folder / "runs" / "sentences-seed0" / "result.json"
    output.unlink()
    sentences_result.rename(tmp_path / "sentences.json")
    try:
        result = invoke([*absent, "--report-only"])
        assert result.exit_code == 0, result.output
        assert json.loads(output.read_text())["not_run"] == [{"system": "sentences", "seed": 0}]
    finally:
        (tmp_path / "sentences.json").rename(sentences_result)
    result = invoke([*absent, "--report-only"])
    assert result.exit_code != 0 and str(tmp_path / "absent") in result.output
    assert {p: p.stat().st_mtime_ns for p in logs} == logs


@pytest.mark.slow
def test_definitions_sharing_a_workdir_share_alike_runs_and_refuse_others(comparison, tmp_path):
    """A run is kept for another definition only when its recipe (config,
    overrides as applied, corpus, encoder) is the same; a changed one is refused
    with the file and what differs, and nothing trains or is overwritten."""
    folder, args, _ = comparison
    stored = json.loads((folder / "runs" / "no_pos-seed0" / "result.json").read_text())
    assert stored["recipe"]["overrides"]["components.ner.model.feature_width"] == 0
    assert stored["recipe"]["overrides"]["system.seed"] == 0
    logs = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/train.log")}

    def run(definition_text, *extra):
        definition = tmp_path / "other.yml"
        definition.write_text(definition_text, encoding="utf8")
        output = tmp_path / "other.json"
        rest = args[1 : args.index("--output")] + ["--output", str(output)] + args[args.index("--output") + 2 :]
        return invoke([str(definition), *rest, *extra])

    alike = "epochs: 1\nseeds: [0, 1]\nwarmup_share: 0.5\nsystems:\n  no_pos:\n    config: configs/pos_ner.cfg\n"
    alike += "    overrides:\n      components.ner.model.feature_width: 0\n"
    result = run(alike, "--seed", "0")
    assert result.exit_code == 0, result.output
    assert "no_pos-seed0: done before, kept" in result.output
    other = alike.replace("feature_width: 0", "feature_width: 8")
    result = run(other, "--seed", "0")
    assert result.exit_code != 0
    assert "no_pos-seed0" in result.output and "another recipe" in result.output and "overrides" in result.output
    longer = alike.replace("epochs: 1", "epochs: 2")
    result = run(longer, "--seed", "0", "--report-only")
    assert result.exit_code != 0 and "another recipe" in result.output
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
    assert json.loads((folder / "runs" / "no_pos-seed0" / "result.json").read_text()) == stored


def with_output(args, output, workdir=None):
    """The comparison's arguments with another --output (and --workdir)."""
    args = [*args]
    args[args.index("--output") + 1] = str(output)
    if workdir is not None:
        args[args.index("--workdir") + 1] = str(workdir)
    return args


@pytest.mark.slow
def test_a_lost_workdir_is_restored_from_the_report_and_nothing_trains_again(comparison, tmp_path):
    """The workdir is not committed; the report is. A fresh checkout with the
    report and an empty workdir keeps every run (none trains) and writes the
    same table."""
    folder, args, _ = comparison
    output = tmp_path / "compare.json"
    output.write_text((folder / "compare.json").read_text())
    before = json.loads(output.read_text())
    fresh = tmp_path / "fresh"
    result = invoke(with_output(args, output, fresh))
    assert result.exit_code == 0, result.output
    assert result.output.count("restored from") == 5
    assert not list(fresh.glob("*/train.log")) and not list(fresh.glob("*/model-last"))
    report = json.loads(output.read_text())
    assert report["runs"] == before["runs"] and report["systems"] == before["systems"]
    assert report["set_aside"] == [] and report["not_run"] == []
    assert (tmp_path / "compare.md").read_text() == (folder / "compare.md").read_text()
    restored = json.loads((fresh / "no_pos-seed0" / "result.json").read_text())
    assert restored == json.loads((folder / "runs" / "no_pos-seed0" / "result.json").read_text())


@pytest.mark.slow
def test_a_stored_run_that_cannot_be_checked_is_set_aside_never_dropped(comparison, tmp_path):
    """A recorded run of another recipe, or with none, is not tabulated, not
    trained over silently, and stays in the report with the reason."""
    folder, args, _ = comparison
    report = json.loads((folder / "compare.json").read_text())
    by_name = {f"{r['system']}-seed{r['seed']}": r for r in report["runs"]}
    by_name["no_pos-seed0"]["recipe"]["overrides"]["components.ner.model.feature_width"] = 8
    del by_name["sentences-seed0"]["recipe"]
    by_name["gone-seed0"] = {**by_name["pos_ner-seed0"], "system": "gone"}
    report["runs"] = list(by_name.values())
    output = tmp_path / "compare.json"
    output.write_text(json.dumps(report))
    fresh = tmp_path / "fresh"
    result = invoke([*with_output(args, output, fresh), "--report-only"])
    assert result.exit_code == 0, result.output
    written = json.loads(output.read_text())
    tabulated = sorted((r["system"], r["seed"]) for r in written["runs"])
    assert tabulated == [("hf_trainer", 0), ("pos_ner", 0), ("pos_ner", 1)]
    assert sorted(written["not_run"], key=str) == sorted(
        [{"system": "no_pos", "seed": 0}, {"system": "sentences", "seed": 0}], key=str
    )
    aside = {f"{r['system']}-seed{r['seed']}": r["set_aside_because"] for r in written["set_aside"]}
    assert set(aside) == {"no_pos-seed0", "sentences-seed0", "gone-seed0"}
    assert "another recipe" in aside["no_pos-seed0"] and "overrides" in aside["no_pos-seed0"]
    assert "no recipe" in aside["sentences-seed0"] and "not a run of this definition" in aside["gone-seed0"]
    assert "set aside in" in result.output and "no_pos-seed0: another recipe" in result.output
    # Set-aside runs are kept in every later report, once each, their numbers intact.
    result = invoke([*with_output(args, output, fresh), "--report-only"])
    assert result.exit_code == 0, result.output
    again = json.loads(output.read_text())
    assert again["set_aside"] == written["set_aside"]
    kept = sorted(r["test_f1"] for r in again["set_aside"])
    assert kept == sorted(by_name[name]["test_f1"] for name in aside)
    assert not (fresh / "no_pos-seed0").exists() and not (fresh / "sentences-seed0").exists()


def tabulate_with_stored(comparison, tmp_path, name, systems):
    """`compare --report-only --stored compare.json` for a one-epoch definition of
    `systems` (YAML text under `systems:`) in a fresh workdir; (result, output, its other args)."""
    folder, args, _ = comparison
    definition = tmp_path / f"{name}.yml"
    definition.write_text("epochs: 1\nseeds: [0, 1]\nwarmup_share: 0.5\nsystems:\n" + systems, encoding="utf8")
    output = tmp_path / f"{name}.json"
    rest = [str(definition), *with_output(args, output, tmp_path / "fresh")[1:]]
    result = invoke([*rest, "--report-only", "--stored", str(folder / "compare.json")])
    assert result.exit_code == 0, result.output
    return result, output, rest


@pytest.mark.slow
def test_another_definitions_report_lends_its_alike_runs(comparison, tmp_path):
    """--stored REPORT: its runs that this definition defines alike count as
    finished; its other runs are ignored (not set aside: they are not ours)."""
    systems = (
        "  no_pos:\n    config: configs/pos_ner.cfg\n    overrides:\n      components.ner.model.feature_width: 0\n"
    )
    result, output, _ = tabulate_with_stored(comparison, tmp_path, "other", systems)
    assert "no_pos-seed0: restored from" in result.output
    report = json.loads(output.read_text())
    assert [(r["system"], r["seed"]) for r in report["runs"]] == [("no_pos", 0)]
    assert report["set_aside"] == []


def test_recipes_keep_paths_under_the_project_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside = str(tmp_path.resolve() / "corpus" / "train.spacy")
    recipe = {"corpus": {"train": inside, "dev": "/elsewhere/dev.spacy"}, "overrides": {"n": 1, "l": [inside]}}
    assert compare.portable(recipe) == {
        "corpus": {"train": "corpus/train.spacy", "dev": "/elsewhere/dev.spacy"},
        "overrides": {"n": 1, "l": ["corpus/train.spacy"]},
    }
    # A recipe recorded with absolute paths on this checkout equals its portable form.
    assert compare.recipe_differences(compare.portable(recipe), recipe) == []
    assert compare.recipe_differences(compare.portable(recipe), {**recipe, "overrides": {}}) == ["overrides"]


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_go_ahead(tmp_path, tiny_bert, corpora):
    definition = tmp_path / "compare.yml"
    definition.write_text(
        """
epochs: 1
seeds: [0]
systems:
  broken:
    config: configs/pos_ner.cfg
    overrides:
      components.ner.model.no_such_setting: 1
  no_pos:
    config: configs/pos_ner.cfg
    overrides:
      components.ner.model.feature_width: 0
""",
        encoding="utf8",
    )
    result = invoke(
        [
            str(definition),
            "--transformer",
            str(tiny_bert),
            "--corpus",
            str(corpora / "documents"),
            "--only",
            "broken",
            "--only",
            "no_pos",
            "--sentences",
            str(corpora / "sentences"),
            "--workdir",
            str(tmp_path / "runs"),
            "--output",
            str(tmp_path / "compare.json"),
            "--gpu",
            "-1",
        ]
    )
    assert result.exit_code == 1
    assert "broken-seed0: FAILED" in result.output and "1 run(s) failed: broken-seed0" in result.output
    report = json.loads((tmp_path / "compare.json").read_text())
    assert [r["system"] for r in report["runs"]] == ["no_pos"]
    assert report["failed"][0]["system"] == "broken"
    assert (tmp_path / "runs" / "broken-seed0" / "train.log").read_text().strip()


def test_missing_corpus_is_named(tmp_path, tiny_bert):
    definition = tmp_path / "compare.yml"
    definition.write_text(DEFINITION, encoding="utf8")
    result = invoke(
        [
            str(definition),
            "--transformer",
            str(tiny_bert),
            "--corpus",
            str(tmp_path / "nowhere"),
            "--sentences",
            str(tmp_path / "nosentences"),
            "--workdir",
            str(tmp_path / "runs"),
        ]
    )
    assert result.exit_code != 0
    flat = "".join(ch for ch in result.output if ch.isalnum() or ch in "/._")
    for folder in ("nowhere", "nosentences"):
        for split in ("train", "dev", "test"):
            assert f"{folder}/{split}.spacy" in flat
    assert "notexist" in flat
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- learning curves


def read_docs(path):
    from spacy.vocab import Vocab

    return list(DocBin().from_disk(path).get_docs(Vocab()))


def test_a_training_subset_is_whole_documents_cut_at_a_sentence(tmp_path):
    docs = make_docs(16, seed=1)
    train = write_docbin(tmp_path / "train.spacy", docs)
    total = sum(len(list(doc.sents)) for doc in docs)
    by_text = {doc.text: doc for doc in docs}
    for n in (1, 5, total // 2, total):
        path = compare.train_subset(train, n, tmp_path / "subsets")
        subset = read_docs(path)
        assert sum(len(list(doc.sents)) for doc in subset) == n
        *whole, last = subset
        assert all(doc.text in by_text for doc in whole)  # untouched documents
        source = next(doc for doc in docs if doc.text.startswith(last.text))  # a sentence-boundary prefix
        assert [(e.start, e.end, e.label_) for e in last.ents] == [
            (e.start, e.end, e.label_) for e in source.ents if e.end <= len(last)
        ]
        assert [t.tag_ for t in last] == [t.tag_ for t in source[: len(last)]]
        assert compare.corpus_sentences(path) == n
    # the same N, the same subset: a fixed order, and the file is reused, not redrawn
    again = compare.train_subset(train, 5, tmp_path / "other")
    assert [d.text for d in read_docs(again)] == [d.text for d in read_docs(tmp_path / "subsets" / "train-5.spacy")]
    # bigger subsets extend smaller ones (one shuffled order, read further)
    small, big = (
        read_docs(tmp_path / "subsets" / "train-5.spacy"),
        read_docs(tmp_path / "subsets" / f"train-{total}.spacy"),
    )
    assert [d.text for d in small[:-1]] == [d.text for d in big[: len(small) - 1]]
    with pytest.raises(compare.DefinitionError, match=f"train_sentences {total + 1}: .*train.spacy has only {total}"):
        compare.train_subset(train, total + 1, tmp_path / "subsets")


@pytest.mark.parametrize("value", [0, -3, "500", 2.5, True])
def test_subset_sizes_and_epochs_must_be_positive_integers(tmp_path, value):
    for key in ("train_sentences", "epochs"):
        path = tmp_path / "curve.yml"
        path.write_text(f"epochs: 1\nseeds: [0]\nsystems:\n  a:\n    config: x.cfg\n    {key}: {json.dumps(value)}\n")
        with pytest.raises(compare.DefinitionError, match=f"system 'a': {key} must be a positive whole number"):
            compare.load_definition(path)


def test_a_system_with_its_own_epochs_gets_their_steps(corpora):
    corpus = {split: corpora / "documents" / f"{split}.spacy" for split in ("train", "dev", "test")}
    system = {"config": str(ROOT / "configs" / "pos_ner.cfg"), "epochs": 3}
    per_epoch = compare.steps_per_epoch(ROOT / "configs" / "pos_ner.cfg", corpus["train"])
    overrides = compare.spacy_overrides(system, 0, corpus, {"epochs": 1, "warmup_share": 0.1}, "bert")
    assert overrides["training.max_epochs"] == 3
    assert overrides["training.optimizer.learn_rate.total_steps"] == 3 * per_epoch
    shared = compare.spacy_overrides({"config": system["config"]}, 0, corpus, {"epochs": 2}, "bert")
    assert shared["training.max_epochs"] == 2
    assert shared["training.optimizer.learn_rate.total_steps"] == 2 * per_epoch


def test_the_learning_curve_figure(tmp_path):
    from pos_ner.evaluation.plots import plot_learning_curve, series_label

    def row(series, n, f1s):
        stats = {"mean": sum(f1s) / len(f1s), "min": min(f1s), "max": max(f1s)}
        return {"series": series, "train_sentences": n, "test_f1": stats, "seeds": list(range(len(f1s)))}

    rows = [row("POS on", n, [f, f + 0.01]) for n, f in ((500, 0.6), (2000, 0.75), (14041, 0.88))]
    rows += [row("POS off", n, [f]) for n, f in ((500, 0.55), (14041, 0.88))]
    plot_learning_curve(rows, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The legend never claims more seeds than a point has.
    assert series_label("POS on", rows[:3]) == "POS on (seeds: 2)"
    assert series_label("POS off", rows[3:]) == "POS off (seeds: 1)"
    assert series_label("mixed", [rows[0], rows[3]]) == "mixed (seeds per point: 2, 1)"


CURVE = """
epochs: 1
seeds: [0]
systems:
  pos_few:
    config: configs/pos_ner.cfg
    series: POS on
    train_sentences: 5
    epochs: 2
  pos_all:
    config: configs/pos_ner.cfg
    series: POS on
"""


@pytest.mark.slow
def test_a_learning_curve_trains_on_the_subsets_and_draws_them(tmp_path, tiny_bert, corpora):
    definition = tmp_path / "curve.yml"
    definition.write_text(CURVE, encoding="utf8")
    args = [str(definition), "--transformer", str(tiny_bert), "--corpus", str(corpora / "documents")]
    args += ["--workdir", str(tmp_path / "runs"), "--output", str(tmp_path / "curve.json"), "--gpu", "-1"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "curve.json").read_text())
    total = compare.corpus_sentences(corpora / "documents" / "train.spacy")
    runs = {r["system"]: r for r in report["runs"]}
    assert (runs["pos_few"]["train_sentences"], runs["pos_few"]["epochs"]) == (5, 2)
    assert (runs["pos_all"]["train_sentences"], runs["pos_all"]["epochs"]) == (total, 1)
    subset = tmp_path / "runs" / "subsets" / "documents" / "train-5.spacy"
    config = load_config(tmp_path / "runs" / "pos_few-seed0" / "model-last" / "config.cfg")
    assert config["paths"]["train"] == str(subset.resolve()) and config["training"]["max_epochs"] == 2
    assert [row["series"] for row in report["systems"]] == ["POS on", "POS on"]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_shipped_learning_curve_compares_pos_on_and_off_at_each_size():
    """configs/curve.yml loads, and at every size it has the default and the
    default without POS, in two series (the configs themselves train in
    test_pos_ner's matrix: they are compare.yml's pos_ner and no_pos)."""
    import srsly

    definition = compare.load_definition(ROOT / "configs" / "curve.yml")
    known = {
        json.dumps(s.get("overrides", {}))
        for s in srsly.read_yaml(ROOT / "configs" / "compare.yml")["systems"].values()
    }
    by_size = {}
    for system in definition["systems"].values():
        assert json.dumps(system.get("overrides", {})) in known
        by_size.setdefault(system.get("train_sentences", "all"), set()).add(system["series"])
    assert len(by_size) == 3 and all(len(series) == 2 for series in by_size.values())
    # the full-size points are the converged comparison's runs, alike to the letter
    converged = compare.load_definition(ROOT / "configs" / "converged.yml")
    for name in ("pos_ner", "no_pos"):
        mine, theirs = definition["systems"][name], converged["systems"][name]
        assert "train_sentences" not in mine and "epochs" not in mine and "epochs" not in theirs
        assert (mine["config"], mine.get("overrides")) == (theirs["config"], theirs.get("overrides"))
    assert (definition["epochs"], definition["warmup_share"]) == (converged["epochs"], converged["warmup_share"])


@pytest.mark.slow
def test_a_gold_tags_system_is_fed_the_corpus_tags_in_training_and_scoring(tmp_path, tiny_bert, corpora):
    definition = tmp_path / "compare.yml"
    definition.write_text(
        "epochs: 1\nseeds: [0]\nsystems:\n  gold_pos:\n    config: configs/pos_ner.cfg\n    gold_tags: true\n",
        encoding="utf8",
    )
    args = [str(definition), "--transformer", str(tiny_bert), "--corpus", str(corpora / "documents")]
    args += ["--sentences", str(corpora / "sentences"), "--workdir", str(tmp_path / "runs")]
    result = invoke([*args, "--output", str(tmp_path / "compare.json"), "--gpu", "-1"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "gold_pos-seed0"
    config = load_config(run / "model-last" / "config.cfg")
    assert config["corpora"]["train"]["gold_tags"] is True and config["corpora"]["dev"]["gold_tags"] is True
    for split in ("dev", "test"):
        metrics = json.loads((run / f"{split}.json").read_text())
        assert metrics["gold_tags"] is True and metrics["tag_acc"] == 1.0


def test_gold_tags_only_for_config_systems(tmp_path):
    definition = tmp_path / "compare.yml"
    definition.write_text(
        "epochs: 1\nseeds: [0]\nsystems:\n  hf:\n    script: scripts.hf_baseline\n    gold_tags: true\n",
        encoding="utf8",
    )
    with pytest.raises(compare.DefinitionError, match="system 'hf': gold_tags works for 'config' systems only"):
        compare.load_definition(definition)


def test_a_script_system_names_a_module_run_from_the_working_directory(tmp_path, monkeypatch):
    """`script: scripts.hf_baseline` runs `python -m scripts.hf_baseline train|evaluate`
    (from the working directory: the project's folder); a file path is refused."""
    definition = tmp_path / "compare.yml"
    definition.write_text(
        "epochs: 1\nseeds: [0]\nsystems:\n  hf:\n    script: benchmarks/hf_token_classification.py\n",
        encoding="utf8",
    )
    with pytest.raises(compare.DefinitionError, match=r"system 'hf': script names a module .*scripts\.hf_baseline"):
        compare.load_definition(definition)
    commands = []

    def fake_run(command, log_path):
        commands.append(command)
        if "--output" in command:
            (tmp_path / "out").mkdir(exist_ok=True)
            Path(command[command.index("--output") + 1]).write_text("{}", encoding="utf8")
        return 1.0

    monkeypatch.setattr(compare, "run_command", fake_run)
    corpus = {split: tmp_path / f"{split}.spacy" for split in ("train", "dev", "test")}
    system = {"script": "scripts.hf_baseline", "args": {"learning_rate": 0.001}}
    result = compare.run_script(system, 0, corpus, {"epochs": 2}, "bert", "-1", tmp_path / "out")
    assert [command[:4] for command in commands] == [
        [sys.executable, "-m", "scripts.hf_baseline", "train"],
        [sys.executable, "-m", "scripts.hf_baseline", "evaluate"],
        [sys.executable, "-m", "scripts.hf_baseline", "evaluate"],
    ]
    assert commands[0][-2:] == ["--learning-rate", "0.001"] and result["train_seconds"] == 1.0
    # the shipped definitions' script systems name modules of the checkout
    for name in ("compare", "converged"):
        for system in compare.load_definition(ROOT / "configs" / f"{name}.yml")["systems"].values():
            if "script" in system:
                assert (ROOT / Path(*system["script"].split("."))).with_suffix(".py").is_file(), system


@pytest.mark.slow
def test_a_stored_run_with_the_same_recipe_under_another_name_is_that_run(comparison, tmp_path):
    """A candidate adopted under another name (a screen's `no_pos` becoming a preset's
    `lean`): the stored run with exactly its recipe is restored under the new name,
    says where it came from, and trains nothing; a different override is not lent."""
    folder = comparison[0]
    systems = "  lean:\n    config: configs/pos_ner.cfg\n    overrides:\n      components.ner.model.feature_width: 0\n"
    systems += (
        "  leaner:\n    config: configs/pos_ner.cfg\n    overrides:\n      components.ner.model.feature_width: 8\n"
    )
    result, output, rest = tabulate_with_stored(comparison, tmp_path, "adopted", systems)
    assert "lean-seed0: restored from no_pos-seed0 in" in result.output
    report = json.loads(output.read_text())
    assert [(r["system"], r["seed"]) for r in report["runs"]] == [("lean", 0)]
    stored = {(r["system"], r["seed"]): r for r in json.loads((folder / "compare.json").read_text())["runs"]}
    lent = report["runs"][0]
    assert lent["same_run_as"].startswith("no_pos-seed0 in ")
    assert lent["test_f1"] == stored[("no_pos", 0)]["test_f1"] and lent["finished"] == stored[("no_pos", 0)]["finished"]
    # (systems without all_seeds run on the first seed only)
    assert [(r["system"], r["seed"]) for r in report["not_run"]] == [("leaner", 0)]
    assert report["set_aside"] == []
    # Tabulated again, the lent run is its own report's run now: kept, not lent twice.
    again = invoke([*rest, "--report-only"])
    assert again.exit_code == 0, again.output
    assert [(r["system"], r["seed"]) for r in json.loads(output.read_text())["runs"]] == [("lean", 0)]
