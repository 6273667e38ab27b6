"""`python -m scripts.experiments simulate-selection` (scripts/experiments/simulate_selection.py)
on a synthetic pool of 60 sentences. The fast tests replace the training subprocess by
a stand-in (a tiny CNN preset trained once in-process, copied in as each round's
model-last, and an F1 that is a function of the labelled count) so that everything
else runs as it does on CoNLL: the pool split into sentences, the training sets, the
selection with `pos-ner select`'s code on the tiny model's probabilities, resuming,
restoring, the read-off and the report. The slow test trains for real."""

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import fix_random_seed, load_config, load_model_from_config
from typer.testing import CliRunner

from pos_ner.cli import app as pos_ner_app
from pos_ner.selection import random_order
from scripts.experiments import simulate_selection as sim
from scripts.experiments.cli import app
from scripts.experiments.compare import DefinitionError
from scripts.experiments.runner import RunFailed

from conftest import ROOT, make_docs, make_examples, train, write_docbin

CNN = ROOT / "configs" / "pos_ner_cnn.cfg"
STRATEGIES = ["random", "uncertainty", "diverse"]
TARGETS = [10, 20, 30, 40]
DEFINITION = """
config: {config}
overrides:
  components.tok2vec.model.embed.rows: [500, 100, 200, 200]
steps_per_round: 8
start: 10
step: 10
max_sentences: 40
seeds: [0, 1]
strategies: {strategies}
scorer: {scorer}
per_doc_cap: 1
reference: {reference}
"""


def write_definition(folder: Path, name: str = "sim.yml", **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values = {
        "config": str(CNN),
        "strategies": json.dumps(STRATEGIES),
        "scorer": "margin",
        "reference": json.dumps({"report": str(folder / "presets.json"), "system": "cnn"}),
        **changes,
    }
    # A stored full-data reference: the mean test F1 of two runs, 0.8 (threshold 0.76).
    runs = [{"system": "cnn", "seed": s, "test_f1": f1, "dev_f1": 0.9} for s, f1 in ((0, 0.79), (1, 0.81))]
    (folder / "presets.json").write_text(json.dumps({"runs": runs}), encoding="utf8")
    path = folder / name
    path.write_text(DEFINITION.format(**values), encoding="utf8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """train.spacy: 20 documents of 3 sentences (the pool of 60), dev and test of 4."""
    folder = tmp_path_factory.mktemp("sim_corpus")
    for split, (n, seed) in {"train": (20, 1), "dev": (4, 2), "test": (4, 3)}.items():
        write_docbin(folder / f"{split}.spacy", make_docs(n, seed=seed))
    return folder


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory) -> Path:
    """The CNN preset with small hash tables, a few updates on toy data: scores that differ."""
    fix_random_seed(0)
    config = load_config(CNN, interpolate=True)
    config["components"]["tok2vec"]["model"]["embed"]["rows"] = [500, 100, 200, 200]
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    train(nlp, make_examples(nlp, n_docs=8), steps=8, annotates=["tok2vec", "tagger"])
    path = tmp_path_factory.mktemp("tiny_cnn") / "model"
    nlp.to_disk(path)
    return path


def synthetic_f1(labelled: int, strategy: str) -> float:
    """Rises with the labelled count; uncertainty's 0.15 ahead: it reaches 0.76 at 30
    sentences (0.7875), random at 40 (0.85), a ratio of 0.75."""
    return 0.85 * labelled / 40 + (0.15 if strategy == "uncertainty" else 0.0)


class FakeTraining:
    """Stands in for `runner.run_experiment`: records what it was asked to train,
    copies the tiny model in as model-last and scores by `synthetic_f1`. `fail`:
    {call number: exception} raised instead."""

    def __init__(self, model: Path, fail=None):
        self.model, self.fail, self.calls = model, fail or {}, []

    def __call__(self, config, output, overrides, score_on, gpu="auto", model="model-best", gold_tags=False):
        docs = list(DocBin().from_disk(overrides["paths.train"]).get_docs(spacy.blank("en").vocab))
        labelled = sum(len(list(doc.sents)) for doc in docs)
        self.calls.append({"output": Path(output), "labelled": labelled, "overrides": overrides, "model": model})
        if len(self.calls) in self.fail:
            raise self.fail[len(self.calls)]
        shutil.copytree(self.model, Path(output) / model, dirs_exist_ok=True)
        strategy = Path(output).parent.name.split("-seed")[0]
        metrics = {"entities": {"micro": {"f1-score": synthetic_f1(labelled, strategy)}}}
        return {"train_seconds": 3.0, "dev": metrics, "test": metrics}


def run(folder: Path, corpus: Path, fake: FakeTraining, definition: Path = None, **kwargs) -> Dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sim, "run_experiment", fake)
        return sim.simulate(
            definition or folder / "sim.yml", corpus, folder / "work", folder / "report.json", "-1", **kwargs
        )


@pytest.fixture(scope="module")
def simulation(tmp_path_factory, corpus, tiny_cnn):
    """Every strategy and both seeds, 4 rounds each, uninterrupted."""
    folder = tmp_path_factory.mktemp("simulation")
    write_definition(folder)
    fake = FakeTraining(tiny_cnn)
    report = run(folder, corpus, fake)
    return folder, report, fake


def pool_of(corpus: Path) -> sim.Pool:
    return sim.load_pool(corpus / "train.spacy")


def chain(report: Dict, strategy: str, seed: int) -> List[Dict]:
    return [r for r in report["rounds"] if r["strategy"] == strategy and r["seed"] == seed]


def strip(result: Dict) -> Dict:
    """A round without what differs between two runs of it (the clock)."""
    return {k: v for k, v in result.items() if k not in ("finished", "selection_seconds")}


def sentence_key(doc_or_span) -> tuple:
    """A sentence's gold annotation: its words, tags and entities (offsets within it)."""
    start = doc_or_span.start if hasattr(doc_or_span, "start") else 0
    return (
        tuple(t.text for t in doc_or_span),
        tuple(t.tag_ for t in doc_or_span),
        tuple((e.start - start, e.end - start, e.label_) for e in doc_or_span.ents),
    )


# --- the rounds ---------------------------------------------------------------------------------------------


def test_rounds_grow_the_labelled_set_by_the_step_with_picks_from_the_pool_never_twice(simulation, corpus):
    _, report, fake = simulation
    pool = pool_of(corpus)
    size = len(pool.sentences)
    assert size == 60 and report["targets"] == TARGETS and not report["failed"] and not report["not_run"]
    for strategy in STRATEGIES:
        for seed in (0, 1):
            rounds = chain(report, strategy, seed)
            assert [r["round"] for r in rounds] == [0, 1, 2, 3] and [r["target"] for r in rounds] == TARGETS
            labelled = list(rounds[0]["start"])
            assert labelled == random_order(size, seed)[:10]
            for result in rounds:
                assert result["labelled"] == len(labelled) and result["pool"] == size - len(labelled)
                picks = result["selected"]
                assert not set(picks) & set(labelled) and len(set(picks)) == len(picks)
                assert all(0 <= i < size for i in picks)
                if strategy == "diverse":  # the cap may leave it short; the next round asks for the rest
                    assert len(picks) <= result["target"] + 10 - len(labelled)
                    assert max(Counter(pool.sentences[i].doc for i in picks).values()) == 1
                    assert len({" ".join(pool.tokens[i]).lower() for i in picks}) == len(picks)
                else:
                    assert len(picks) == 10 and result["labelled"] == result["target"]
                labelled += picks
    # every round trained once, on its labelled count, for the definition's steps, model-last scored
    assert len(fake.calls) == 3 * 2 * 4
    assert all(call["model"] == "model-last" for call in fake.calls)
    assert {call["overrides"]["training.max_steps"] for call in fake.calls} == {8}
    assert all(call["overrides"]["components.tok2vec.model.embed.rows"] == [500, 100, 200, 200] for call in fake.calls)


def test_a_seed_starts_every_strategy_from_the_same_sentences(simulation):
    _, report, _ = simulation
    for seed in (0, 1):
        starts = {tuple(chain(report, strategy, seed)[0]["start"]) for strategy in STRATEGIES}
        assert len(starts) == 1
    assert chain(report, "random", 0)[0]["start"] != chain(report, "random", 1)[0]["start"]


def test_each_round_trains_on_the_gold_labels_of_its_labelled_sentences_only(simulation, corpus):
    folder, report, _ = simulation
    pool = pool_of(corpus)
    gold = [sentence_key(pool.docs[s.doc][s.start : s.end]) for s in pool.sentences]
    for strategy in STRATEGIES:
        rounds = chain(report, strategy, 0)
        labelled = list(rounds[0]["start"])
        for result in rounds:
            path = folder / "work" / f"{strategy}-seed0" / f"round-{result['round']:02d}" / "train.spacy"
            docs = list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
            trained = Counter(sentence_key(sent) for doc in docs for sent in doc.sents)
            assert trained == Counter(gold[i] for i in labelled)
            labelled += result["selected"]


def test_uncertainty_and_diverse_pick_what_pos_ner_select_picks(simulation, corpus, tiny_cnn, tmp_path):
    """Round 1's pool, written as `pos-ner select` reads it (a tokens record per
    sentence, its document as doc_id), selected by the command with the round's model."""
    _, report, _ = simulation
    pool = pool_of(corpus)
    for strategy in ("uncertainty", "diverse"):
        for seed in (0, 1):
            rounds = chain(report, strategy, seed)
            labelled = set(rounds[0]["start"]) | set(rounds[0]["selected"])
            remaining = [i for i in range(len(pool.sentences)) if i not in labelled]
            records = [{"tokens": pool.tokens[i], "doc_id": pool.sentences[i].doc, "index": i} for i in remaining]
            source = tmp_path / f"{strategy}-{seed}.jsonl"
            source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
            output = tmp_path / f"{strategy}-{seed}.out.jsonl"
            n = rounds[1]["target"] + 10 - rounds[1]["labelled"]  # diverse asks for what it fell short by
            args = ["select", tiny_cnn, source, output, "--n", n, "--strategy", strategy, "--seed", seed]
            result = CliRunner().invoke(pos_ner_app, [*map(str, args), "--format", "prodigy"])
            assert result.exit_code == 0, result.output
            picked = [json.loads(line)["index"] for line in output.read_text(encoding="utf8").splitlines()]
            assert picked == rounds[1]["selected"] and picked


def test_diverse_falling_short_is_made_up_the_next_round_and_marked(corpus, tiny_cnn, tmp_path, monkeypatch):
    """20 documents, at most one sentence of each a round: 25 more cannot be found."""
    definition = write_definition(tmp_path, strategies='["diverse"]')
    text = definition.read_text().replace("step: 10", "step: 25").replace("max_sentences: 40", "max_sentences: 60")
    definition.write_text(text.replace("seeds: [0, 1]", "seeds: [0]"), encoding="utf8")
    asked, select_next = [], sim.select_next

    def spy(model, pool, remaining, n, *args):
        asked.append(n)
        return select_next(model, pool, remaining, n, *args)

    monkeypatch.setattr(sim, "select_next", spy)
    report = run(tmp_path, corpus, FakeTraining(tiny_cnn))
    rounds = report["rounds"]
    assert report["targets"] == [10, 35, 60] and [r["target"] for r in rounds] == [10, 35, 60]
    first, second, third = rounds
    assert 0 < len(first["selected"]) <= 20 and second["labelled"] == 10 + len(first["selected"]) < 35
    # each round asks for what brings the count to the next target: the step and the shortfall
    assert asked == [25, 60 - second["labelled"], 60 - third["labelled"]] and asked[1] > 25
    assert third["labelled"] == second["labelled"] + len(second["selected"])
    # nothing left to select (a fully labelled pool): nothing timed
    assert select_next(tiny_cnn, pool_of(corpus), [], 5, "diverse", {}, 0) == ([], None)
    assert "| 35 |" in report["markdown"] and " †" in report["markdown"]
    assert "fewer sentences than the row's" in report["markdown"]


def test_the_same_seed_gives_the_same_picks(simulation, corpus, tiny_cnn, tmp_path):
    _, report, _ = simulation
    write_definition(tmp_path)
    again = run(tmp_path, corpus, FakeTraining(tiny_cnn), seeds=[1])
    assert [strip(r) for r in again["rounds"]] == [strip(r) for r in report["rounds"] if r["seed"] == 1]
    assert again["not_run"] == [f"{s}-seed0" for s in STRATEGIES]


def test_a_chain_resumes_after_an_interruption_without_retraining_finished_rounds(
    simulation, corpus, tiny_cnn, tmp_path
):
    _, report, _ = simulation
    write_definition(tmp_path)
    interrupted = FakeTraining(tiny_cnn, fail={8: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, corpus, interrupted, seeds=[0])
    finished = sorted((tmp_path / "work").glob("*/round-*/result.json"))
    assert len(finished) == 7  # seed 0: rounds 0 and 1 of the three, round 2 of random
    before = {path: path.read_bytes() for path in finished}
    resumed = FakeTraining(tiny_cnn)
    again = run(tmp_path, corpus, resumed, seeds=[0])
    assert len(resumed.calls) == 12 - 7
    assert {(c["output"].parent.name, c["output"].name) for c in resumed.calls} == {
        ("uncertainty-seed0", "round-02"),
        ("diverse-seed0", "round-02"),
        ("random-seed0", "round-03"),
        ("uncertainty-seed0", "round-03"),
        ("diverse-seed0", "round-03"),
    }
    assert all(path.read_bytes() == content for path, content in before.items())
    assert [strip(r) for r in again["rounds"]] == [strip(r) for r in report["rounds"] if r["seed"] == 0]


def test_a_lost_workdir_is_restored_from_the_report_and_nothing_trains(simulation, corpus, tiny_cnn, tmp_path):
    folder, report, _ = simulation
    shutil.copytree(folder, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "work")
    nothing = FakeTraining(tiny_cnn, fail={1: AssertionError("trained")})
    again = run(tmp_path / "copy", corpus, nothing)
    assert not nothing.calls
    assert [strip(r) for r in again["rounds"]] == [strip(r) for r in report["rounds"]]
    assert len(list((tmp_path / "copy" / "work").glob("*/round-*/result.json"))) == 24


def test_a_round_of_another_recipe_is_refused_not_reused(simulation, corpus, tiny_cnn, tmp_path):
    folder, _, _ = simulation
    shutil.copytree(folder / "work", tmp_path / "work")
    definition = write_definition(tmp_path, scorer="entropy")
    with pytest.raises(DefinitionError, match=r"uncertainty-seed0/round-00/result.json: .*differs in scorer"):
        run(tmp_path, corpus, FakeTraining(tiny_cnn), definition)
    # the scorer is no part of random's recipe: its rounds are kept
    kept = FakeTraining(tiny_cnn)
    random_only = write_definition(tmp_path, "random.yml", strategies='["random"]', scorer="entropy")
    again = run(tmp_path, corpus, kept, random_only)
    assert not kept.calls and len(again["rounds"]) == 8
    # and OUTPUT's rounds of another recipe are refused too (rewriting it would lose them)
    shutil.copy(folder / "report.json", tmp_path / "report.json")
    shutil.rmtree(tmp_path / "work")
    with pytest.raises(DefinitionError, match=r"report.json: uncertainty-seed0 round 0 has another recipe"):
        run(tmp_path, corpus, FakeTraining(tiny_cnn), definition)


def test_a_failed_round_stops_its_chain_and_the_others_go_ahead(corpus, tiny_cnn, tmp_path):
    """Through the command line: the failure is named, the exit status is 1."""
    write_definition(tmp_path)
    fake = FakeTraining(tiny_cnn, fail={5: RunFailed("pos-ner train failed (exit 1); see train.log")})
    args = ["simulate-selection", str(tmp_path / "sim.yml"), "--corpus", str(corpus), "--workdir"]
    args += [str(tmp_path / "work"), "--output", str(tmp_path / "report.json"), "--seed", "0", "--gpu", "-1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sim, "run_experiment", fake)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "1 chain(s) stopped by a failed run: uncertainty-seed0" in result.output  # call 5: its round 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(f["strategy"], f["round"]) for f in report["failed"]] == [("uncertainty", 1)]
    counts = Counter(r["strategy"] for r in report["rounds"])
    assert counts == {"random": 4, "uncertainty": 1, "diverse": 4}
    assert "| labelled sentences |" in result.output


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("md-output", "--output must not end in .md or .png"),
        ("output-is-definition", "the output is also an input"),
        ("unknown-strategy", "--only: ['smart'] not in the strategies"),
    ],
)
def test_the_command_refuses_before_any_training(case, expected, corpus, tiny_cnn, tmp_path):
    definition = write_definition(tmp_path)
    output = {"md-output": tmp_path / "report.md", "output-is-definition": definition}.get(case, tmp_path / "r.json")
    args = ["simulate-selection", str(definition), "--corpus", str(corpus), "--workdir", str(tmp_path / "work")]
    args += ["--output", str(output), *(["--only", "smart"] if case == "unknown-strategy" else [])]
    before = definition.read_bytes()
    fake = FakeTraining(tiny_cnn)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sim, "run_experiment", fake)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and expected in result.output, result.output
    assert not fake.calls and not (tmp_path / "work").exists() and definition.read_bytes() == before


# --- the reference and the read-off -------------------------------------------------------------------------


def test_the_read_off_on_synthetic_curves():
    def rounds(strategy, seed, f1s):
        return [
            {"strategy": strategy, "seed": seed, "round": i, "labelled": 500 * (i + 1), "test_f1": f1}
            for i, f1 in enumerate(f1s)
        ]

    curves = [
        *rounds("random", 0, [0.5, 0.6, 0.7, 0.76, 0.8]),  # reaches 0.76 at 2,000
        *rounds("random", 1, [0.5, 0.6, 0.7, 0.75, 0.77]),  # at 2,500
        *rounds("uncertainty", 0, [0.5, 0.77, 0.7, 0.8, 0.8]),  # at 1,000 (the first time counts)
        *rounds("uncertainty", 1, [0.5, 0.6, 0.76, 0.8, 0.8]),  # at 1,500
        *rounds("diverse", 0, [0.5, 0.6, 0.7, 0.75, 0.75]),  # never, in all 5 rounds
        *rounds("diverse", 1, [0.5, 0.6]),  # not yet, 2 of 5 rounds
    ]
    off = sim.read_off(curves, 0.8, 0.95, 5, 0.6, STRATEGIES)
    assert off["threshold_f1"] == pytest.approx(0.76)
    reached = {(c["strategy"], c["seed"]): (c["reached_at"], c["complete"]) for c in off["chains"]}
    assert reached == {
        ("random", 0): (2000, True),
        ("random", 1): (2500, True),
        ("uncertainty", 0): (1000, True),
        ("uncertainty", 1): (1500, True),
        ("diverse", 0): (None, True),
        ("diverse", 1): (None, False),
    }
    ratio = off["ratios"]["uncertainty"]
    assert ratio["per_seed"] == {0: 0.5, 1: 0.6}
    assert ratio["of_means"] == pytest.approx(1250 / 2250) and ratio["meets_goal"] is True
    assert off["ratios"]["diverse"] == {
        "per_seed": {},
        "of_means": None,
        "seeds": [0, 1],
        "goal": 0.6,
        "meets_goal": None,
    }
    assert "random" not in off["ratios"]
    # no reference yet: nothing is read off
    assert sim.read_off(curves, None, 0.95, 5, 0.6, STRATEGIES)["threshold_f1"] is None


def test_the_report_files_agree_with_the_rounds(simulation):
    folder, report, _ = simulation
    stored = [json.loads(p.read_text()) for p in sorted((folder / "work").glob("*/round-*/result.json"))]
    key = lambda r: (r["strategy"], r["seed"], r["round"])  # noqa: E731
    assert sorted(report["rounds"], key=key) == sorted(stored, key=key)
    assert json.loads((folder / "report.json").read_text())["rounds"] == report["rounds"]
    assert report["reference"]["test_f1"] == pytest.approx(0.8) and report["reference"]["seeds"] == [0, 1]
    assert report["settings"]["steps_per_round"] == 8 and report["machine"]["spacy"] == spacy.__version__
    # the table: per strategy and round, over the two seeds
    row = next(r for r in report["table"] if r["strategy"] == "uncertainty" and r["target"] == 30)
    f1s = [r["test_f1"] for r in report["rounds"] if r["strategy"] == "uncertainty" and r["round"] == 2]
    assert row["seeds"] == [0, 1] and row["test_f1"]["mean"] == pytest.approx(sum(f1s) / 2)
    assert row["test_f1"]["min"] == min(f1s) and row["test_f1"]["max"] == max(f1s)
    markdown = (folder / "report.md").read_text()
    assert markdown == report["markdown"]
    assert "| 30 | 63.75 (63.75–63.75) | 78.75 (78.75–78.75) |" in markdown
    # the read-off: uncertainty reaches 76 (95 % of 80) at 30 sentences, random at 40
    chains = {(c["strategy"], c["seed"]): c["reached_at"] for c in report["read_off"]["chains"]}
    assert chains[("uncertainty", 0)] == chains[("uncertainty", 1)] == 30
    assert chains[("random", 0)] == chains[("random", 1)] == 40
    assert report["read_off"]["ratios"]["uncertainty"]["of_means"] == pytest.approx(0.75)
    assert report["read_off"]["ratios"]["uncertainty"]["meets_goal"] is False
    assert (
        "| uncertainty | 0 | 30 |" in markdown
        and "uncertainty / random, labelled sentences at the threshold: 0.75" in markdown
    )
    for row in report["table"]:
        if row["strategy"] != "random":
            assert row["selection_seconds"]["max"] > 0  # the pool was scored, and timed
    figure = folder / "report.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reference_run_trains_the_whole_pool_per_seed(corpus, tiny_cnn, tmp_path):
    definition = write_definition(tmp_path, strategies='["random"]', reference='{"all_sentences": true, "steps": 5}')
    fake = FakeTraining(tiny_cnn)
    report = run(tmp_path, corpus, fake, definition)
    references = [c for c in fake.calls if c["output"].name.startswith("reference-seed")]
    assert [c["output"].name for c in references] == ["reference-seed0", "reference-seed1"]
    assert all(c["labelled"] == 60 and c["overrides"]["training.max_steps"] == 5 for c in references)
    # every sentence labelled: the training set is the corpus itself
    train = tmp_path / "work" / "reference-seed0" / "train.spacy"
    assert train.read_bytes() == DocBin(store_user_data=True, docs=pool_of(corpus).docs).to_bytes()
    assert report["reference"]["test_f1"] == pytest.approx(0.85 * 60 / 40)
    assert "a run per seed on all 60 pool sentences, 5 steps" in report["markdown"]


def test_the_rounds_stop_at_the_pool():
    assert sim.targets({"start": 10, "step": 20, "max_sentences": 100}, 60) == [10, 30, 50, 60]
    assert sim.targets({"start": 500, "step": 500, "max_sentences": 6000}, 14041)[-1] == 6000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategies": '["random", "smart"]'}, "strategies must be a list of random, uncertainty, diverse"),
        ({"scorer": "luck"}, "scorer must be one of margin, entropy, confidence"),
        ({"reference": "0.8"}, "reference must be {report: PATH, system: NAME}"),
        ({"config": "configs/nothing.cfg"}, "config configs/nothing.cfg does not exist"),
    ],
)
def test_a_bad_definition_is_named(tmp_path, change, message):
    with pytest.raises(DefinitionError, match=message.replace("{", r"\{").replace("}", r"\}")):
        sim.load_definition(write_definition(tmp_path, **change))


def test_a_definition_missing_keys_or_with_a_bad_count_is_named(tmp_path):
    path = tmp_path / "sim.yml"
    path.write_text("config: x\nseeds: [0]\n", encoding="utf8")
    with pytest.raises(DefinitionError, match="missing 'steps_per_round', 'start', 'step'"):
        sim.load_definition(path)
    text = write_definition(tmp_path).read_text().replace("step: 10", "step: 0")
    path.write_text(text, encoding="utf8")
    with pytest.raises(DefinitionError, match="step must be a positive whole number, not 0"):
        sim.load_definition(path)


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_trains_scores_and_selects_for_real_then_resumes_without_training(corpus, tmp_path):
    """Two rounds of uncertainty with real `pos-ner train` and `evaluate` subprocesses."""
    definition = write_definition(tmp_path, strategies='["uncertainty"]')
    definition.write_text(definition.read_text().replace("max_sentences: 40", "max_sentences: 20"), encoding="utf8")
    args = ["simulate-selection", str(definition), "--corpus", str(corpus), "--workdir", str(tmp_path / "work")]
    args += ["--output", str(tmp_path / "report.json"), "--seed", "0", "--gpu", "-1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    rounds = report["rounds"]
    assert [(r["round"], r["labelled"]) for r in rounds] == [(0, 10), (1, 20)]
    for r in rounds:
        assert 0 <= r["test_f1"] <= 1 and 0 <= r["dev_f1"] <= 1 and r["train_minutes"] > 0
        assert r["selection_seconds"] > 0 and len(r["selected"]) == 10
        assert (tmp_path / "work" / "uncertainty-seed0" / f"round-{r['round']:02d}" / "model-last").is_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        patch.setattr(sim, "run_experiment", FakeTraining(Path("/nonexistent"), fail={1: AssertionError("trained")}))
        again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "report.json").read_text())["rounds"] == rounds
