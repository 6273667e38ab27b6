"""spaCy's own CLI on the project's configs and on a trained pipeline, without
a code file and from a folder outside the checkout: each command's output is
checked, not only its exit status. Plus the two config rules that keep those
tools working: the schedule's length is written out (spaCy's debug tools do
not interpolate it) and `pos-ner train` keeps it equal to an overridden
`max_steps`."""

import json
import pickle
import re
import subprocess
import sys

import pytest
import spacy
import srsly
from spacy.tokens import DocBin
from spacy.util import load_config
from thinc.api import registry

from pos_ner.cli.train import ENCODER, MAX_STEPS, TOTAL_STEPS, sync_overrides

from conftest import ROOT, make_docs, write_docbin

CONFIGS = ["pos_ner", "pos_ner_cnn", "baseline_ner"]
TEXTS = ["Lena Fischer visited Cairo .", "", "Acme Corp hired Omar in Berlin ."]
# A few steps on the toy corpus; the schedule's length is given too, as spaCy's own CLI needs.
TOY = ["--training.max_steps", "12", "--training.optimizer.learn_rate.total_steps", "12"]
TOY += ["--training.eval_frequency", "6"]


def spacy_cli(*args, cwd):
    """`python -m spacy ARGS` in `cwd`; its stdout, after checking it succeeded."""
    command = [sys.executable, "-m", "spacy", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def encoder_args(name, tiny_bert):
    return ["--components.transformer.model.name", tiny_bert] if name != "pos_ner_cnn" else []


def corpus_args(toy_corpus):
    train, dev = toy_corpus
    return ["--paths.train", train, "--paths.dev", dev]


def entities(nlp, texts):
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


@pytest.mark.parametrize("name", CONFIGS)
def test_schedule_length_is_written_out_and_equals_max_steps(name):
    """`debug data`, `load_config` + `nlp.initialize()` do not interpolate a
    reference to another section inside the optimizer's schedule."""
    config = load_config(ROOT / "configs" / f"{name}.cfg", interpolate=False)
    schedule = config["training"]["optimizer"]["learn_rate"]
    assert isinstance(schedule["total_steps"], int)
    assert schedule["total_steps"] == config["training"]["max_steps"]


def test_train_moves_the_end_of_the_schedule_with_max_steps():
    config = ROOT / "configs" / "pos_ner.cfg"
    assert sync_overrides(config, {MAX_STEPS: 40}, None) == {MAX_STEPS: 40, TOTAL_STEPS: 40}
    # An explicit schedule length is the user's choice.
    assert sync_overrides(config, {MAX_STEPS: 40, TOTAL_STEPS: 90}, None) == {MAX_STEPS: 40, TOTAL_STEPS: 90}
    assert sync_overrides(config, {}, "enc") == {ENCODER: "enc"}
    # The CNN preset has no transformer whose encoder could be set.
    assert sync_overrides(ROOT / "configs" / "pos_ner_cnn.cfg", {}, "enc") == {}


def test_schedule_gives_thincs_rates_and_pickles_mid_run():
    """The registered `pos_ner.warmup_linear.v1` (found through the entry point)
    against thinc's generator, including after a pickle round trip."""
    settings = {"initial_rate": 0.001, "warmup_steps": 3, "total_steps": 10}
    ours = registry.schedules.get("pos_ner.warmup_linear.v1")(**settings)
    thincs = registry.schedules.get("warmup_linear.v1")(**settings)
    first = [next(ours) for _ in range(5)]
    assert first == [next(thincs) for _ in range(5)]
    resumed = pickle.loads(pickle.dumps(ours))
    assert [next(resumed) for _ in range(8)] == [next(thincs) for _ in range(8)]
    assert first[0] == 0.0 and max(first) == pytest.approx(0.001)


@pytest.mark.parametrize("name", CONFIGS)
def test_init_fill_config_adds_nothing_to_the_shipped_configs(name, tmp_path):
    """The configs are complete: spaCy's defaults add no setting a reader has not seen."""
    filled = tmp_path / "filled.cfg"
    spacy_cli("init", "fill-config", ROOT / "configs" / f"{name}.cfg", filled, cwd=tmp_path)
    assert load_config(filled, interpolate=False) == load_config(ROOT / "configs" / f"{name}.cfg", interpolate=False)


@pytest.mark.parametrize("name", CONFIGS)
def test_spacy_debug_config_validates_the_shipped_configs(name, tmp_path, toy_corpus, tiny_bert):
    config = ROOT / "configs" / f"{name}.cfg"
    out = spacy_cli("debug", "config", config, *corpus_args(toy_corpus), *encoder_args(name, tiny_bert), cwd=tmp_path)
    assert "Config is valid" in out


@pytest.fixture(scope="module")
def debug_corpus(tmp_path_factory):
    """Enough documents for `debug data` (under 100 it reports an error, under 2,000 a warning)."""
    folder = tmp_path_factory.mktemp("debug_corpus")
    train = write_docbin(folder / "train.spacy", make_docs(120, seed=4))
    return train, write_docbin(folder / "dev.spacy", make_docs(10, seed=5))


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_spacy_debug_data_reports_on_the_shipped_configs(name, tmp_path, debug_corpus, tiny_bert):
    """spaCy's NER section is tied to its own factory name `ner`: it appears for
    baseline_ner.cfg, and the README points there for the entity statistics."""
    config = ROOT / "configs" / f"{name}.cfg"
    args = ["debug", "data", config, *corpus_args(debug_corpus), *encoder_args(name, tiny_bert)]
    out = spacy_cli(*args, cwd=tmp_path)
    assert "Pipeline can be initialized with data" in out and "Corpus is loadable" in out
    assert "120 training docs" in out and "10 evaluation docs" in out
    assert re.search(r"\d+ label\(s\) in train data", out)  # the tagger's section
    assert re.search(r"✔ \d+ checks? passed", out) and "error" not in out.split("Summary")[-1]
    if name == "baseline_ner":
        ner = out.split("Named Entity Recognition")[1].split("Part-of-speech")[0]
        assert "3 label(s)" in ner and "No entities crossing sentence boundaries" in ner
    else:
        assert "Named Entity Recognition" not in out


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_spacy_train_trains_the_shipped_configs(name, tmp_path, toy_corpus, tiny_bert):
    """Plain `spacy train`, as a spaCy user runs it: no code file, the schedule's
    length passed with max_steps."""
    config = ROOT / "configs" / f"{name}.cfg"
    args = [*corpus_args(toy_corpus), *encoder_args(name, tiny_bert), *TOY, "--training.batcher.size", "150"]
    out = spacy_cli("train", config, "--output", tmp_path / "out", *args, cwd=tmp_path)
    assert "Saved pipeline to output directory" in out
    meta = srsly.read_json(tmp_path / "out" / "model-best" / "meta.json")
    assert 0.0 <= meta["performance"]["ents_f"] <= 1.0
    nlp = spacy.load(tmp_path / "out" / "model-last")
    assert nlp.pipe_names == load_config(config)["nlp"]["pipeline"]
    doc = nlp("Lena lives in Cairo .")
    assert doc.has_annotation("TAG") and doc.has_annotation("ENT_IOB")


def test_spacy_evaluate_and_benchmark_accuracy_agree(tiny_pipeline_dir, tmp_path, toy_corpus):
    _, dev = toy_corpus
    scores = []
    for command in (["evaluate"], ["benchmark", "accuracy"]):
        output = tmp_path / f"{command[-1]}.json"
        spacy_cli(*command, tiny_pipeline_dir, dev, "--output", output, cwd=tmp_path)
        scores.append(json.loads(output.read_text()))
    assert scores[0]["ents_f"] == scores[1]["ents_f"] and scores[0]["tag_acc"] == scores[1]["tag_acc"]
    assert set(scores[0]["ents_per_type"]) <= {"PER", "LOC", "ORG"} and scores[0]["ents_per_type"]
    assert 0.0 <= scores[0]["ents_f"] <= 1.0 and scores[0]["tag_acc"] > 0.0


@pytest.mark.slow
def test_spacy_benchmark_speed_reports_words_per_second(tiny_pipeline_dir, tmp_path, toy_corpus):
    _, dev = toy_corpus
    out = spacy_cli("benchmark", "speed", tiny_pipeline_dir, dev, "--batches", 30, "--warmup", 1, cwd=tmp_path)
    mean = re.search(r"Mean: ([\d.]+) words/s \(95% CI", out)
    assert mean and float(mean.group(1)) > 0, out


@pytest.mark.slow
def test_spacy_apply_writes_the_pipelines_entities(tiny_pipeline_dir, tmp_path):
    data = tmp_path / "input.jsonl"
    srsly.write_jsonl(data, [{"text": text} for text in TEXTS])
    output = tmp_path / "out.spacy"
    spacy_cli("apply", tiny_pipeline_dir, data, output, "--batch-size", 2, cwd=tmp_path)
    nlp = spacy.load(tiny_pipeline_dir)
    docs = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    assert [doc.text for doc in docs] == TEXTS
    assert [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs] == entities(nlp, TEXTS)
    assert any(doc.ents for doc in docs)


ASSEMBLE = """
[paths]
model = null

[nlp]
lang = "en"
pipeline = ["transformer","tagger","ner","sentencizer"]

[components]

[components.transformer]
source = ${paths.model}

[components.tagger]
source = ${paths.model}

[components.ner]
source = ${paths.model}

[components.sentencizer]
factory = "sentencizer"
"""


@pytest.mark.slow
def test_spacy_assemble_reuses_the_trained_components(tiny_pipeline_dir, tmp_path):
    """Where assemble makes sense: the trained components sourced into a new
    pipeline (here next to spaCy's sentencizer) predict as before."""
    config = tmp_path / "assemble.cfg"
    config.write_text(ASSEMBLE)
    spacy_cli("assemble", config, tmp_path / "assembled", "--paths.model", tiny_pipeline_dir, cwd=tmp_path)
    assembled = spacy.load(tmp_path / "assembled")
    assert assembled.pipe_names == ["transformer", "tagger", "ner", "sentencizer"]
    assert entities(assembled, TEXTS) == entities(spacy.load(tiny_pipeline_dir), TEXTS)
    assert len(list(assembled("Lena lives in Cairo . Omar works in Berlin .").sents)) == 2


@pytest.mark.slow
def test_spacy_package_requires_the_component_package(tiny_pipeline_dir, tmp_path):
    """The sdist (the wheel is built by test_project) names spacy-pos-ner, found
    from the factory's entry point, so pip installs the component with the model."""
    packages = tmp_path / "packages"
    packages.mkdir()
    spacy_cli("package", tiny_pipeline_dir, packages, "--name", "toy", "--version", "0.0.1", cwd=tmp_path)
    meta = srsly.read_json(packages / "en_toy-0.0.1" / "meta.json")
    assert any(req.startswith("spacy-pos-ner") for req in meta["requirements"]), meta["requirements"]
    assert (packages / "en_toy-0.0.1" / "dist" / "en_toy-0.0.1.tar.gz").is_file()
