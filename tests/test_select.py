"""`pos-ner select` (pos_ner.selection, pos_ner.io.preannotate) on the tiny
trained pipeline: the record scores and the three strategies against an
independent computation (calibrate's `token_probabilities`, `nlp.pipe`), the
same output for a seed, every pool record accounted for, the Label Studio and
Prodigy import formats, and their round trip through the tools' export formats
and `pos-ner convert` back to the model's own entities."""

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.cli.calibrate import token_probabilities
from pos_ner.selection import (
    Scorer,
    diverse_pick,
    entropy_score,
    group_key,
    margin_score,
    random_order,
    record_score,
    text_key,
    uncertainty_order,
)

from conftest import make_sentence

MODEL_VERSION = "en_pipeline-0.0.0"  # the test pipeline's meta: lang en, name pipeline, version 0.0.0
# How far select's scores may lie from those computed here (other batches, other padding). The toy
# model differs from session to session, so rankings are checked up to this, not for exact ties.
TOLERANCE = 1e-4


def pool_texts(n: int = 12, seed: int = 11) -> List[str]:
    """Distinct sentences of the toy domain (entities of every label, one without any)."""
    rng, texts = random.Random(seed), []
    while len(texts) < n:
        text = " ".join(make_sentence(rng)[0])
        if text not in texts:
            texts.append(text)
    return texts


TEXTS = pool_texts()


def write_jsonl(path: Path, records: List[Dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf8")
    return path


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def select(*args, code: int = 0):
    """In-process `pos-ner select ARGS`; the result, its exit status checked."""
    result = CliRunner().invoke(app, ["select", *map(str, args)])
    assert result.exit_code == code, result.output
    return result


def summary(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def model(tiny_pipeline_dir) -> Path:
    return tiny_pipeline_dir


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def expected(nlp) -> Dict[str, Dict]:
    """Per text: each scorer's score, from calibrate's own probabilities helper, and the entities `nlp.pipe` sets."""
    docs = list(nlp.pipe(TEXTS))
    probs, _ = token_probabilities(nlp, docs, 32)
    found = {}
    for text, doc, p in zip(TEXTS, docs, probs):
        confidences = [ent._.confidence for ent in doc.ents]
        found[text] = {
            "scores": {scorer: record_score(scorer, p, confidences) for scorer in Scorer},
            "entities": [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents],
        }
    assert sum(len(item["entities"]) for item in found.values()) >= 10, "the toy model finds entities"
    return found


@pytest.fixture
def pool(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pool.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])


def ls_texts(path: Path) -> List[str]:
    return [task["data"]["text"] for task in json.loads(path.read_text(encoding="utf8"))]


# --- scores and ranking, without a model ---------------------------------------------------------------------


def test_scores_are_confidence_like_and_read_the_probabilities():
    sure = numpy.array([[0.98, 0.01, 0.01], [0.96, 0.02, 0.02]])
    torn = numpy.array([[0.98, 0.01, 0.01], [0.45, 0.40, 0.15]])
    assert margin_score(sure) == pytest.approx(0.94) and margin_score(torn) == pytest.approx(0.05)
    assert entropy_score(numpy.full((2, 3), 1 / 3)) == pytest.approx(0.0)
    assert 1 > entropy_score(sure) > entropy_score(torn) > 0
    # the mean over tokens: a long record of sure tokens does not hide its one torn token any better than a short one
    assert entropy_score(numpy.vstack([torn, sure])) == pytest.approx((entropy_score(torn) + entropy_score(sure)) / 2)
    assert record_score(Scorer.confidence, sure, [0.9, 0.4, 0.7]) == 0.4
    assert record_score(Scorer.confidence, torn, []) == 1.0  # nothing found, nothing to doubt
    assert record_score(Scorer.margin, torn, []) == round(0.05, 6)


def test_ties_go_by_the_seed_then_input_order():
    scores = [0.5, 0.2, 0.5, 0.5, 0.9, 0.2]
    order = uncertainty_order(scores, seed=0)
    assert [scores[i] for i in order] == sorted(scores)
    assert order == uncertainty_order(scores, seed=0)
    orders = {tuple(uncertainty_order(scores, seed)) for seed in range(20)}
    assert len(orders) > 1 and all(set(o[:2]) == {1, 5} and o[-1] == 4 for o in orders)
    assert random_order(10, 3) == random_order(10, 3) != random_order(10, 4)
    assert sorted(random_order(10, 3)) == list(range(10))


def test_diverse_pick_caps_groups_and_skips_duplicate_texts():
    texts = ["A b", "a  B", "c", "d", "e", "f"]
    groups = ["x", None, "x", "x", None, "y"]
    assert diverse_pick(range(6), 6, groups, texts, per_doc_cap=1) == [0, 4, 5]  # 1 repeats 0; 2, 3 are x's
    assert diverse_pick(range(6), 6, groups, texts, per_doc_cap=2) == [0, 2, 4, 5]
    assert diverse_pick(range(6), 2, groups, texts, per_doc_cap=2) == [0, 2]
    assert text_key(" Anna  BERG\tlives ") == "anna berg lives"
    assert group_key({"doc_id": 3}) == group_key({"meta": {"doc_id": 3}}) != group_key({"doc_id": "3"})
    assert group_key({"text": "x"}) is None and group_key({"meta": "m", "doc_id": None}) is None
    assert group_key({"source": ["a", 1]}, "source") == '["a", 1]'


# --- the strategies on the model -----------------------------------------------------------------------------


@pytest.mark.parametrize("scorer", [scorer.value for scorer in Scorer])
def test_uncertainty_selects_the_lowest_scores(model, scorer, pool, tmp_path, expected):
    output = tmp_path / "out.jsonl"
    result = select(
        model, pool, output, "--n", 4, "--strategy", "uncertainty", "--score", scorer, "--format", "prodigy"
    )
    tasks = read_jsonl(output)
    picked = [task["text"] for task in tasks]
    scores = [task["meta"]["score"] for task in tasks]
    assert len(picked) == 4 and scores == sorted(scores)  # most uncertain first
    assert scores == pytest.approx([expected[text]["scores"][scorer] for text in picked], abs=TOLERANCE)
    others = [expected[text]["scores"][scorer] for text in TEXTS if text not in picked]
    assert max(scores) <= min(others) + TOLERANCE  # no record left behind is less certain
    rest = read_jsonl(tmp_path / "out.rest.jsonl")
    assert [record["text"] for record in rest] == [text for text in TEXTS if text not in picked]  # pool order
    assert (
        summary(result) == f"12 read, 4 selected ({output}), 8 not selected ({tmp_path / 'out.rest.jsonl'}), 0 rejected"
    )
    assert not (tmp_path / "out.rejects.jsonl").exists()


def test_random_is_the_same_for_a_seed_and_differs_for_another(model, pool, tmp_path):
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        select(model, pool, tmp_path / f"{name}.json", "--n", 4, "--strategy", "random", "--seed", seed)
        runs[name] = ((tmp_path / f"{name}.json").read_bytes(), (tmp_path / f"{name}.rest.jsonl").read_bytes())
    assert runs["a"] == runs["b"]
    assert ls_texts(tmp_path / "a.json") != ls_texts(tmp_path / "c.json")
    assert ls_texts(tmp_path / "a.json") == [TEXTS[i] for i in random_order(12, 1)[:4]]
    # not simply the pool's first records
    assert ls_texts(tmp_path / "a.json") != TEXTS[:4] or ls_texts(tmp_path / "c.json") != TEXTS[:4]


@pytest.mark.parametrize("strategy", ["uncertainty", "diverse"])
def test_a_seed_gives_the_same_output_twice(model, strategy, pool, tmp_path):
    outputs = []
    for name in ("a", "b"):
        select(model, pool, tmp_path / f"{name}.jsonl", "--n", 5, "--strategy", strategy, "--format", "prodigy")
        outputs.append([(tmp_path / f"{name}{suffix}").read_bytes() for suffix in (".jsonl", ".rest.jsonl")])
    assert outputs[0] == outputs[1] and outputs[0][0].count(b"\n") == 5


def test_diverse_caps_each_document_and_skips_near_duplicates(model, tmp_path, expected):
    # three documents of four records each, the document named at the top or in meta; then a
    # record that repeats the most uncertain text but for case and spaces
    records = []
    for i, text in enumerate(TEXTS):
        doc = "abc"[i % 3]
        records.append({"id": i, "text": text, **({"doc_id": doc} if i % 2 else {"meta": {"doc_id": doc}})})
    lowest = min(TEXTS, key=lambda text: expected[text]["scores"][Scorer.margin])
    repeat = "  " + lowest.upper().replace(" ", "  ")
    records.append({"id": 99, "text": repeat})
    pool = write_jsonl(tmp_path / "pool.jsonl", records)
    group = {record["text"]: group_key(record) for record in records}
    for cap in (1, 2):
        output = tmp_path / f"cap{cap}.json"
        result = select(model, pool, output, "--n", 5, "--strategy", "diverse", "--per-doc-cap", cap)
        tasks = json.loads(output.read_text(encoding="utf8"))
        picked = [task["data"]["text"] for task in tasks]
        docs = [group[text] for text in picked]
        # three documents, and the repeat if it comes before the text it repeats
        assert len(picked) == min(5, 3 * cap + (repeat in picked))
        assert all(docs.count(doc) <= cap for doc in docs if doc is not None)
        # the most uncertain text comes first, and once: the second of it and its repeat is skipped
        # (the repeat scores as it will: the model sees the case)
        margin = {text: expected[text]["scores"][Scorer.margin] for text in TEXTS}
        scores = {task["data"]["text"]: task["predictions"][0]["score"] for task in tasks}
        assert (
            list(scores.values()) == sorted(scores.values()) and scores[picked[0]] <= min(margin.values()) + TOLERANCE
        )
        assert (lowest in picked) != (repeat in picked) and len({text_key(t) for t in picked}) == len(picked)
        assert [scores[t] for t in picked if t in margin] == pytest.approx(
            [margin[t] for t in picked if t in margin], abs=TOLERANCE
        )
        # within a document, the picks are its most uncertain records (but one whose repeat was picked)
        keys = {text_key(text): text for text in picked}
        for doc in set(docs) - {None}:
            left = [margin[t] for t in TEXTS if group[t] == doc and t not in picked and text_key(t) not in keys]
            chosen = [margin[t] for t in picked if group[t] == doc]
            assert max(chosen) <= min(left, default=1.0) + TOLERANCE
        if cap == 1:  # three documents and one record without a document cannot give five records
            assert f"--strategy diverse: {len(picked)} of --n 5 selected" in result.stderr
        assert f"13 read, {len(picked)} selected" in summary(result)
    # another field names the document
    grouped = write_jsonl(tmp_path / "grouped.jsonl", [{"text": t, "source": i % 2} for i, t in enumerate(TEXTS)])
    select(model, grouped, tmp_path / "g.json", "--n", 5, "--strategy", "diverse", "--group-field", "source")
    assert len(ls_texts(tmp_path / "g.json")) == 2


# --- every record accounted for ------------------------------------------------------------------------------


def test_every_pool_record_is_selected_left_or_rejected(model, tmp_path):
    lines = [json.dumps({"id": i, "text": text}) for i, text in enumerate(TEXTS[:6])]
    lines.insert(2, '{"id": "bad", "text": ')  # line 3: invalid JSON
    lines.insert(4, json.dumps({"id": "no-text", "txt": "x"}))  # line 5
    lines.insert(6, "")  # line 7: blank, not a record
    lines.insert(7, json.dumps({"id": "empty", "text": "  "}))  # line 8
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(lines) + "\n", encoding="utf8")
    output = tmp_path / "picked.json"
    result = select(model, pool, output, "--n", 3)
    rejects = read_jsonl(tmp_path / "picked.rejects.jsonl")
    assert [(r["line"], r.get("id")) for r in rejects] == [(3, None), (5, "no-text"), (8, "empty")]
    assert rejects[0]["reason"].startswith("invalid JSON") and rejects[1]["reason"] == "missing field 'text'"
    assert rejects[2]["reason"] == "empty text: nothing to annotate"
    for reject in rejects:
        assert f"{pool}:{reject['line']}: {reject['reason']}" in result.stderr.splitlines()
    selected = [task["data"]["line"] for task in json.loads(output.read_text(encoding="utf8"))]
    rest = [record["line"] for record in read_jsonl(tmp_path / "picked.rest.jsonl")]
    assert len(selected) == 3 and sorted(selected + rest + [r["line"] for r in rejects]) == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    rejects_path = tmp_path / "picked.rejects.jsonl"
    rest_path = tmp_path / "picked.rest.jsonl"
    assert summary(result) == (
        f"9 read, 3 selected ({output}), 3 not selected ({rest_path}), 3 rejected (see {rejects_path})"
    )
    # the rest is a pool for the next round: the same fields, and its own lines
    next_round = select(model, tmp_path / "picked.rest.jsonl", tmp_path / "next.json", "--n", 10)
    assert "3 read, 3 selected" in summary(next_round)
    assert {task["data"]["id"] for task in json.loads((tmp_path / "next.json").read_text())} == {
        record["id"] for record in read_jsonl(tmp_path / "picked.rest.jsonl")
    }
    assert not (tmp_path / "next.rejects.jsonl").exists()
    # a later run without rejects removes the earlier rejects file, so the files always come from one run
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": text} for text in TEXTS[:3]])
    select(model, clean, output, "--n", 1)
    assert not rejects_path.exists()


def test_a_text_pool_reads_as_predict_reads_it(model, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text(f"{TEXTS[0]}\n\n{TEXTS[1]}\n{TEXTS[2]}\n", encoding="utf8")
    result = select(model, pool, tmp_path / "out.jsonl", "--n", 2, "--format", "prodigy")
    assert summary(result).startswith("4 read, 2 selected") and ", 1 not selected" in summary(result)
    assert read_jsonl(tmp_path / "out.rejects.jsonl") == [{"line": 2, "reason": "empty text: nothing to annotate"}]
    selected = {task["meta"]["line"]: task["text"] for task in read_jsonl(tmp_path / "out.jsonl")}
    rest = {record["line"]: record["text"] for record in read_jsonl(tmp_path / "out.rest.jsonl")}
    assert {**selected, **rest} == {1: TEXTS[0], 3: TEXTS[1], 4: TEXTS[2]} and len(selected) == 2
    assert all(set(record) == {"line", "text"} for record in read_jsonl(tmp_path / "out.rest.jsonl"))


def test_an_empty_pool_writes_empty_files(model, tmp_path):
    for name, content, n_read in (("empty.jsonl", "", 0), ("blank.jsonl", "\n \n", 0), ("blank.txt", "\n  \n", 2)):
        pool = tmp_path / name
        pool.write_text(content, encoding="utf8")
        output = tmp_path / f"{pool.stem}_{pool.suffix[1:]}.json"
        rest, rejects = output.with_suffix(".rest.jsonl"), output.with_suffix(".rejects.jsonl")
        for strategy in ("random", "uncertainty", "diverse"):
            result = select(model, pool, output, "--n", 5, "--strategy", strategy)
            assert f"{pool}: no records to select from" in result.stderr
            seen = f" (see {rejects})" if n_read else ""
            assert (
                summary(result)
                == f"{n_read} read, 0 selected ({output}), 0 not selected ({rest}), {n_read} rejected{seen}"
            )
            assert json.loads(output.read_text()) == [] and rest.read_text() == ""
            assert len(read_jsonl(rejects)) == 2 if n_read else not rejects.exists()


def test_n_larger_than_the_pool_selects_all_and_says_so(model, pool, tmp_path, expected):
    result = select(model, pool, tmp_path / "all.json", "--n", 50, "--strategy", "random")
    assert "--n 50: the pool has only 12 records to select from; selecting all" in result.stderr
    assert sorted(ls_texts(tmp_path / "all.json")) == sorted(TEXTS)
    assert (tmp_path / "all.rest.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--n", "0"], ["Invalid value for '--n'"]),
        (["--n", "-3"], ["Invalid value for '--n'"]),
        ([], ["Missing option '--n'"]),
        (["--n", "2", "--per-doc-cap", "2"], ["--per-doc-cap", "applies to --strategy diverse only"]),
        (
            ["--n", "2", "--strategy", "random", "--group-field", "x"],
            ["--group-field", "applies to --strategy diverse only"],
        ),
    ],
)
def test_bad_options_exit_2_naming_the_option(model, args, expected, pool, tmp_path):
    result = select(model, pool, tmp_path / "out.json", *args, code=2)
    assert all(part in result.output for part in expected), result.output
    assert not (tmp_path / "out.json").exists()


def test_the_command_line_is_one_line_per_failure(model, pool, tmp_path):
    command = [sys.executable, "-m", "pos_ner", "select", str(model), str(pool), str(tmp_path / "o.json")]
    bad_n = subprocess.run([*command, "--n", "0"], capture_output=True, text=True, timeout=120)
    assert bad_n.returncode == 2 and bad_n.stderr.strip().splitlines() == [
        "pos-ner select: error: Invalid value for '--n': Input should be greater than or equal to 1 "
        "(see 'pos-ner select --help')"
    ]
    same = subprocess.run([*command[:-1], str(pool), "--n", "2"], capture_output=True, text=True, timeout=120)
    assert same.returncode == 1 and "the output is also an input" in same.stderr and "Traceback" not in same.stderr
    assert not (tmp_path / "o.json").exists()


# --- the tools' formats and the round trip -------------------------------------------------------------------


def test_label_studio_tasks(model, tmp_path, expected):
    records = [{"id": f"r{i}", "text": text, "meta": {"source": "news"}} for i, text in enumerate(TEXTS)]
    pool = write_jsonl(tmp_path / "pool.jsonl", records)
    select(model, pool, tmp_path / "tasks.json", "--n", 12, "--score", "confidence")
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf8"))
    assert len(tasks) == 12
    for task in tasks:
        text = task["data"]["text"]
        line = task["data"]["line"]
        assert task["data"] == {"text": text, "line": line, "id": f"r{line - 1}", "meta": {"source": "news"}}
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == MODEL_VERSION
        assert prediction["score"] == pytest.approx(expected[text]["scores"][Scorer.confidence], abs=TOLERANCE)
        found = []
        for result in prediction["result"]:
            value = result["value"]
            assert {k: result[k] for k in ("from_name", "to_name", "type")} == {
                "from_name": "label", "to_name": "text", "type": "labels"
            }  # fmt: skip
            assert value["text"] == text[value["start"] : value["end"]] and 0 < result["score"] <= 1
            found.append((value["start"], value["end"], value["labels"][0]))
        assert found == expected[text]["entities"]
        assert len({result["id"] for result in prediction["result"]}) == len(found)
        # the record's score under --score confidence is its least confident entity
        assert prediction["score"] == pytest.approx(
            min((r["score"] for r in prediction["result"]), default=1.0), abs=TOLERANCE
        )


def test_prodigy_tasks_carry_the_models_tokens(model, tmp_path, expected):
    pool = write_jsonl(
        tmp_path / "pool.jsonl", [{"id": i, "text": t, "meta": {"doc_id": i}} for i, t in enumerate(TEXTS)]
    )
    select(model, pool, tmp_path / "tasks.jsonl", "--n", 12, "--format", "prodigy", "--score", "entropy")
    for task in read_jsonl(tmp_path / "tasks.jsonl"):
        text, tokens = task["text"], task["tokens"]
        assert set(task) == {"text", "tokens", "spans", "meta", "id"}
        assert task["meta"] == {"doc_id": task["id"], "line": task["id"] + 1, "score": pytest.approx(
            expected[text]["scores"][Scorer.entropy], abs=TOLERANCE)}  # fmt: skip
        assert [t["id"] for t in tokens] == list(range(len(tokens)))
        assert all(
            text[t["start"] : t["end"]] == t["text"] and t["ws"] == (text[t["end"] : t["end"] + 1] == " ")
            for t in tokens
        )
        for span in task["spans"]:
            assert (tokens[span["token_start"]]["start"], tokens[span["token_end"]]["end"]) == (
                span["start"],
                span["end"],
            )
        assert [(s["start"], s["end"], s["label"]) for s in task["spans"]] == expected[text]["entities"]


def converted_entities(export: Path, tmp_path: Path) -> Dict[str, List]:
    """`pos-ner convert EXPORT`'s entities, by text."""
    output = tmp_path / f"{export.stem}.spacy"
    result = CliRunner().invoke(app, ["convert", str(export), str(output)])
    assert result.exit_code == 0, result.output
    docs = DocBin().from_disk(output).get_docs(spacy.blank("en").vocab)
    return {doc.text: [(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs}


@pytest.mark.parametrize("fmt", ["label-studio", "prodigy"])
def test_round_trip_through_the_tools_export_and_convert(model, fmt, tmp_path, expected):
    """The tool's export of the pre-annotations accepted as they are converts
    back to exactly the entities the model predicts (nlp.pipe, not select's output)."""
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])
    output = tmp_path / ("tasks.json" if fmt == "label-studio" else "tasks.jsonl")
    select(model, pool, output, "--n", 8, "--format", fmt, "--strategy", "diverse")
    if fmt == "label-studio":  # Label Studio's JSON export: each task with its annotation, made from the prediction
        tasks = json.loads(output.read_text(encoding="utf8"))
        for number, task in enumerate(tasks):
            task.update(id=number + 1, annotations=[{"id": number, "result": task["predictions"][0]["result"]}])
        export = tmp_path / "export.json"
        export.write_text(json.dumps(tasks, indent=2), encoding="utf8")
        texts = [task["data"]["text"] for task in tasks]
    else:  # Prodigy's db-out of ner.manual: the accepted tasks
        tasks = [{**task, "answer": "accept"} for task in read_jsonl(output)]
        export = write_jsonl(tmp_path / "export.jsonl", tasks)
        texts = [task["text"] for task in tasks]
    converted = converted_entities(export, tmp_path)
    assert sorted(converted) == sorted(texts) and len(texts) == 8
    assert converted == {text: expected[text]["entities"] for text in texts}
    assert sum(map(len, converted.values())) >= 5


def test_a_tokens_pool_keeps_its_tokens_through_prodigy(model, tmp_path, nlp):
    words = [["Anna", "Berg", "lives", "in", "New", "York", "."], ["the", "weather", "was", "fine", "."]]
    pool = write_jsonl(tmp_path / "tokens.jsonl", [{"tokens": w, "id": i} for i, w in enumerate(words)])
    select(model, pool, tmp_path / "tasks.jsonl", "--n", 2, "--format", "prodigy", "--strategy", "random")
    tasks = read_jsonl(tmp_path / "tasks.jsonl")
    assert sorted([t["text"] for t in task["tokens"]] for task in tasks) == sorted(words)
    export = write_jsonl(tmp_path / "export.jsonl", [{**task, "answer": "accept"} for task in tasks])
    from spacy.tokens import Doc

    predicted = {}
    for w in words:
        doc = nlp(Doc(nlp.vocab, words=w))
        predicted[doc.text] = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    assert converted_entities(export, tmp_path) == predicted
