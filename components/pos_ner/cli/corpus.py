from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional

import typer
from spacy.tokens import Doc

from ..corpus import hold_out
from ..io.conll import DEFAULT_N_SENTS, ConversionError, Scheme, docs_to_docbin
from ..io.files import OutputError, atomic_file, check_output
from ..io.formats import BadDataOptions, InputFormat, OptionError, ReadReport, read_docs, summarize, with_hint
from ._util import app, fail, load_pipeline
from .convert import NORMALIZE_HELP, SKIP_HELP, BoolValueFlags, rejects_line, rejects_path, write_rejects

SPLITS = ("train", "dev", "test")


def add_pos_tags(docs: List[Doc], model: str) -> int:
    """Give the Docs without POS tags the tags `model`'s tagger predicts on
    their tokens (the pipeline's tagger then learns to reproduce them); returns
    how many Docs were tagged. Components after the tagger do not run."""
    nlp = load_pipeline(model)
    taggers = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "tagger"]
    if not taggers:
        raise OptionError(f"{model}: the --pos-model pipeline has no tagger (pipeline: {nlp.pipe_names})")
    needed = nlp.pipe_names[: nlp.pipe_names.index(taggers[0]) + 1]
    untagged = [doc for doc in docs if len(doc) and not doc.has_annotation("TAG")]
    inputs = [
        Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in untagged
    ]
    with nlp.select_pipes(enable=needed):
        for doc, tagged in zip(untagged, nlp.pipe(inputs)):
            for token, tagged_token in zip(doc, tagged):
                token.tag_ = tagged_token.tag_
    return len(untagged)


@app.command("corpus", cls=BoolValueFlags)
def corpus_cli(
    data_dir: Path = typer.Argument(..., help="Folder holding the annotated files"),
    output_dir: Path = typer.Argument(..., help="Folder for train.spacy, dev.spacy and test.spacy"),
    train: str = typer.Option(..., "--train", help="Training file, in DATA_DIR"),
    dev: str = typer.Option("", "--dev", help="Dev file, in DATA_DIR; empty: hold out --dev-share of the train docs"),
    test: str = typer.Option(..., "--test", help="Test file, in DATA_DIR"),
    dev_share: float = typer.Option(0.1, "--dev-share", min=0.0, max=0.5, help="Share of the training tokens held out"),
    dev_seed: int = typer.Option(0, "--dev-seed", help="Seed of the held-out draw (the same seed, the same split)"),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format", help="Input format of all three files (as convert)"),
    scheme: Scheme = typer.Option(Scheme.auto, "--scheme", help="Tag scheme of CoNLL/columns/CSV input (as convert)"),
    n_sents: Optional[int] = typer.Option(
        None,
        "--n-sents",
        min=1,
        help=f"Sentences per document (as convert; default {DEFAULT_N_SENTS})",
    ),
    lang: str = typer.Option("en", "--lang", help="spaCy language whose tokenizer splits texts without tokens"),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="Text field of JSONL / Label Studio input"),
    pos_model: str = typer.Option(
        "", "--pos-model", help="spaCy pipeline with a tagger (e.g. en_core_web_sm) that tags docs without POS tags"
    ),
    normalize: bool = typer.Option(False, "--normalize", help=f"{NORMALIZE_HELP} (In every file.)"),
    skip_bad_records: bool = typer.Option(False, "--skip-bad-records", help=f"{SKIP_HELP} (In every file.)"),
    rejects: Optional[Path] = typer.Option(
        None, "--rejects", help="Rejects file of --skip-bad-records, for all files (default: OUTPUT_DIR/rejects.txt)"
    ),
) -> None:
    """Convert a corpus' train, dev and test files (any format `convert` reads)
    to OUTPUT_DIR/{train,dev,test}.spacy. Without a dev file, a reproducible
    share of the training documents is held out as the dev set.

    The default pipeline's tagger learns from the corpus' POS tags. Formats
    without them (span JSONL, Label Studio, two columns) can be tagged here by
    an existing spaCy pipeline (--pos-model); otherwise a warning says so.

    All files are read and checked before anything is written; bad input stops
    with one line `FILE:LINE: reason` and exit status 1, unless --normalize or
    --skip-bad-records (applied to every file) let it through.
    """
    names = {"train": train, "dev": dev, "test": test}
    inputs = {split: data_dir / name for split, name in names.items() if name}
    outputs = {split: output_dir / f"{split}.spacy" for split in SPLITS}
    docs, descriptions = {}, {}
    options = BadDataOptions(normalize=normalize, skip_bad_records=skip_bad_records)
    reports = {split: ReadReport(options) for split in inputs}
    try:
        rejects_file = rejects_path(rejects, output_dir / "rejects.txt", options)
        for output in [*outputs.values(), *([rejects_file] if rejects_file else [])]:
            check_output(output, inputs.values())
        for split, path in inputs.items():
            if not path.is_file():
                raise OutputError(f"{path}: no such file (the {split} file; see `pos-ner check-data`)")
            docs[split], description = read_docs(
                path, fmt.value, scheme.value, n_sents, lang, text_field, reports[split]
            )
            descriptions[split] = "\n".join([description, *reports[split].describe()])
        if pos_model:
            for split in docs:
                n_tagged = add_pos_tags(docs[split], pos_model)
                if n_tagged:
                    descriptions[split] += f"; POS tags of {n_tagged} documents from {pos_model}"
        if not dev:
            if dev_share <= 0:
                raise OptionError("no dev file and --dev-share 0: give one or the other")
            try:
                held = hold_out(docs["train"], dev_share, dev_seed)
            except ValueError as error:
                raise OptionError(f"{inputs['train']}: {error}") from None
            docs["train"], docs["dev"] = held.kept, held.dev
            descriptions["dev"] = held.describe(dev_share, dev_seed)
        # All three are written to temporary files first and renamed together at the end,
        # so a failure leaves the earlier corpus as it was.
        with ExitStack() as files:
            for split in SPLITS:
                data = docs_to_docbin(docs[split]).to_bytes()
                files.enter_context(atomic_file(outputs[split])).write(data)
            if rejects_file is not None:
                n_rejected = write_rejects(files, rejects_file, list(reports.values()))
    except (ConversionError, OutputError, OptionError) as error:
        fail(with_hint(error, options))
    if not any(doc.has_annotation("TAG") for doc in docs["train"]):
        typer.echo(
            f"Warning: {inputs['train']} has no POS tags, which the pipeline's tagger learns from: "
            "pass --pos-model (e.g. en_core_web_sm) to tag the corpus",
            err=True,
        )
    for split in SPLITS:
        source = inputs.get(split, inputs["train"])
        typer.echo(f"Wrote {outputs[split]} from {source}")
        typer.echo(summarize(docs[split], descriptions[split]))
    if rejects_file is not None:
        typer.echo(rejects_line(n_rejected, rejects_file, [report.unit for report in reports.values()]))
