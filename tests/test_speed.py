"""`python -m benchmarks.speed` end to end on the tiny pipeline, a synthetic DocBin and
an ONNX export made here: every system reports positive speed, latency and memory."""

import json
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT, make_docs, write_docbin


@pytest.mark.slow
def test_speed_benchmark_end_to_end(tiny_pipeline_dir, tmp_path):
    from pos_ner.onnx.export import export

    onnx_dir = tmp_path / "onnx"
    export(str(tiny_pipeline_dir), onnx_dir, quantize=True)
    data = write_docbin(tmp_path / "dev.spacy", make_docs(6, seed=5))
    output = tmp_path / "speed.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.speed",
        "--model",
        str(tiny_pipeline_dir),
        "--onnx-dir",
        str(onnx_dir),
        "--data",
        str(data),
        "--output",
        str(output),
        "--limit-docs",
        "4",
        "--repeats",
        "1",
        "--n-sentences",
        "5",
        "--threads",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(output.read_text())
    results = report["model"]["results"]
    assert set(results) == {"spacy-torch", "spacy-torch-bf16", "onnx-fp32", "onnx-int8", "hf-pipeline"}
    for name, r in results.items():
        assert r["n_docs"] == 4 and r["n_words"] > 0, name
        assert r["words_per_second"] > 0 and r["words_per_second_min"] <= r["words_per_second_max"], name
        assert r["latency_ms_p50"] > 0, name
        assert r["peak_rss_mib"] > 0, name
    assert "spacy-torch" in proc.stdout and "words/s" in proc.stdout
    # the encoder's FLOP ceiling: the tiny BERT's shape, a positive probe, the share printed
    ceiling = results["spacy-torch"]["flop_ceiling"]
    assert ceiling["encoder"]["window"] > 0 and ceiling["matmul_gflops"] > 0
    assert ceiling["wordpieces_per_word"] >= 1
    share = results["spacy-torch"]["words_per_second"] / ceiling["ceiling_words_per_second"]
    assert ceiling["share_of_ceiling"] == pytest.approx(share)
    assert "FLOP ceiling" in proc.stdout and "% reached" in proc.stdout
    # a single sentence's time: the encoder's forward is inside the pipeline's, and runs bare too
    split = results["spacy-torch"]["latency_split"]
    assert 0 < split["encoder_in_pipeline_ms_p50"] < split["pipeline_ms_p50"]
    assert split["bare_encoder_ms_p50"] > 0 and "the bare encoder on the same wordpieces" in proc.stdout
    torch_rows = {"spacy-torch", "spacy-torch-bf16"}
    assert all("latency_split" not in r for name, r in results.items() if name not in torch_rows)
    # the bfloat16 row: its ceiling from a bfloat16 probe, its split beside it
    assert ceiling["matmul_dtype"] == "float32"
    assert results["spacy-torch-bf16"]["flop_ceiling"]["matmul_dtype"] == "bfloat16"
    assert results["spacy-torch-bf16"]["latency_split"]["bare_encoder_ms_p50"] > 0
    assert "spacy-torch-bf16: FLOP ceiling" in proc.stdout and "bfloat16 matmul probe" in proc.stdout


def test_missing_export_names_the_step_to_run(tiny_pipeline_dir, tmp_path):
    """`spacy project run speed` before `export-onnx`: one line, not a traceback."""
    command = [sys.executable, "-m", "benchmarks.speed", "--model", str(tiny_pipeline_dir)]
    command += ["--onnx-dir", str(tmp_path / "onnx"), "--data", str(tmp_path / "dev.spacy")]
    result = subprocess.run(
        [*command, "--output", str(tmp_path / "speed.json")], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"speed.py: not found: {tmp_path / 'onnx'} (spacy project run export-onnx); "
        f"{tmp_path / 'dev.spacy'} (spacy project run convert): run the step named first"
    ]
    assert not (tmp_path / "speed.json").exists()
    # Without an ONNX system the export is not needed.
    result = subprocess.run(
        [*command, "--systems", "spacy-torch,hf-pipeline", "--output", str(tmp_path / "speed.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"speed.py: not found: {tmp_path / 'dev.spacy'} (spacy project run convert): run the step named first"
    ]


@pytest.mark.slow
def test_pipelines_side_by_side(tiny_pipeline_dir, tmp_path):
    """--pipelines: the presets' comparison: each pipeline measured in its own
    process, with its size on disk; a missing one is named before any work."""
    import spacy
    from spacy.util import load_config, load_model_from_config

    from conftest import make_examples

    cnn = tmp_path / "cnn"
    nlp = load_model_from_config(load_config(ROOT / "configs" / "pos_ner_cnn.cfg", interpolate=True), auto_fill=True)
    nlp.initialize(lambda: make_examples(nlp, n_docs=4))
    nlp.to_disk(cnn)
    assert spacy.load(cnn).pipe_names == ["tok2vec", "tagger", "ner"]
    data = write_docbin(tmp_path / "dev.spacy", make_docs(4, seed=5))
    command = [sys.executable, "-m", "benchmarks.speed", "--data", str(data), "--repeats", "1"]
    command += ["--n-sentences", "3", "--output", str(tmp_path / "presets.json")]
    result = subprocess.run(
        [*command, "--pipelines", f"trf={tiny_pipeline_dir},cnn={cnn}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "presets.json").read_text())["pipelines"]
    assert list(report) == ["trf", "cnn"]
    for r in report.values():
        assert r["words_per_second"] > 0 and r["latency_ms_p50"] > 0 and r["disk_mib"] > 0
    assert "cnn" in result.stdout and "MiB on disk" in result.stdout
    missing = subprocess.run(
        [*command, "--pipelines", f"x={tmp_path / 'none'}"], capture_output=True, text=True, cwd=ROOT
    )
    assert (
        missing.returncode == 1
        and missing.stderr.strip() == f"speed.py: not found: x={tmp_path / 'none'}: train them first"
    )


@pytest.mark.slow
def test_onnx_session_options_benchmark(tiny_onnx_dir, tmp_path):
    """`python -m benchmarks.onnx_session`: all 8 settings (fp32/int8 x arena x patterns), each measured."""
    data = write_docbin(tmp_path / "dev.spacy", make_docs(3, seed=5))
    output = tmp_path / "session.json"
    command = [sys.executable, "-m", "benchmarks.onnx_session", "--onnx-dir", str(tiny_onnx_dir)]
    command += ["--data", str(data), "--limit-docs", "2", "--repeats", "1", "--threads", "1", "--output", str(output)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(output.read_text())["results"]
    settings = {(r["model"], r["memory_arena"], r["memory_pattern"]) for r in results}
    assert len(settings) == 8
    assert all(r["n_docs"] == 2 and r["words_per_second"] > 0 and r["peak_rss_mib"] > 0 for r in results)
    assert proc.stdout.count("words/s") == 8


@pytest.mark.slow
def test_inference_windows_benchmark(tiny_pipeline_dir, tmp_path):
    """`python -m benchmarks.inference_windows`: one trained pipeline predicting with other
    windows; a stride equal to the window
    (no overlap) makes the encoder compute fewer positions than the overlapping one."""
    data = write_docbin(tmp_path / "gold.spacy", make_docs(6, seed=5))
    output = tmp_path / "windows.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.inference_windows",
        "--model",
        str(tiny_pipeline_dir),
        "--score",
        str(data),
        "--speed",
        str(data),
        "--settings",
        "8/4,8/4,8/8",
        "--repeats",
        "2",
        "--threads",
        "1",
        "--output",
        str(output),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(output.read_text())
    settings = report["settings"]
    assert list(settings) == ["8/4", "8/8"]  # a repeated setting is one row
    overlapping, disjoint = settings["8/4"]["scores"][str(data)], settings["8/8"]["scores"][str(data)]
    assert disjoint["real_positions"] < overlapping["real_positions"]
    assert overlapping["words"] == disjoint["words"] > 0
    for row in settings.values():
        assert 0 <= row["scores"][str(data)]["f1"] <= 1 and row["words_per_second"]["median"] > 0
    assert "| 8/8 |" in proc.stdout
    bad = subprocess.run(
        [*cmd[:3], "--model", "m", "--score", "s", "--speed", "s", "--settings", "8/9", "--output", "o"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0 and "0 < stride <= window" in bad.stderr


@pytest.mark.slow
def test_training_speed_benchmark(tiny_bert, toy_corpus, tmp_path):
    """`python -m benchmarks.train_speed` on the tiny BERT: every system takes real optimizer
    steps on words of the corpus, the warm-up steps are not counted, and the split of
    a step adds up (backward and optimizer are parts of it)."""
    train, _ = toy_corpus
    output = tmp_path / "train_speed.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_speed",
        "--transformer",
        str(tiny_bert),
        "--train",
        str(train),
        "--steps",
        "4",
        "--warmup-steps",
        "1",
        "--rounds",
        "2",
        "--hf-batch-size",
        "4",
        "--workdir",
        str(tmp_path / "work"),
        "--output",
        str(output),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(output.read_text())
    assert set(report["results"]) == {"spacy", "spacy-bf16", "hf-trainer"}
    for name, result in report["results"].items():
        rounds = report["steps"][name]
        assert len(rounds) == 2 and all(len(steps) == 4 for steps in rounds), name
        assert all(step["words"] > 0 and step["seconds"] > 0 for steps in rounds for step in steps), name
        assert result["timed_steps"] == 6, name
        timed = [step for steps in rounds for step in steps[1:]]
        assert result["words_per_second"] == pytest.approx(
            statistics.median(
                sum(s["words"] for s in steps[1:]) / sum(s["seconds"] for s in steps[1:]) for steps in rounds
            )
        ), name
        assert sum(s["words"] for s in timed) / len(timed) == pytest.approx(result["words_per_step"]), name
        assert all(0 < step["backward"] + step["optimizer"] < step["seconds"] for step in timed), name
        assert result["share_backward"] + result["share_optimizer"] + result["share_rest"] == pytest.approx(1.0)
    # the HF side counts one word per labelled first subword: at most 4 sentences per step
    assert max(s["words"] for steps in report["steps"]["hf-trainer"] for s in steps) <= 4 * 40
    assert "× HF Trainer" in proc.stdout and "| hf-trainer |" in proc.stdout
