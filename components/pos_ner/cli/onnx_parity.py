import json
from pathlib import Path
from typing import Optional

import typer

from ..io.files import write_text
from ._util import (
    app,
    check_outputs,
    debug,
    fail,
    load_pipeline,
    model_location,
    one_line,
    read_docbin,
    require_extras,
    require_file,
)


def check_export(onnx_dir: Path, model: str) -> None:
    """One line (exit 1) unless ONNX_DIR holds a complete export: its meta file
    and every file the meta names."""
    from ..onnx import META_FILE

    again = f"run `pos-ner export-onnx {model} {onnx_dir}`"
    meta_path = onnx_dir / META_FILE
    if not onnx_dir.is_dir():
        fail(f"{onnx_dir}: no such folder; {again} first")
    if not meta_path.is_file():
        fail(f"{onnx_dir}: not an ONNX export (no {META_FILE}); {again} first")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf8"))
        names = [*meta["models"].values(), meta["hf_tokenizer"], meta["spacy_tokenizer"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        fail(f"{meta_path}: not a valid export meta file ({type(error).__name__}: {one_line(error, 120)}); {again}")
    missing = [name for name in names if not (onnx_dir / str(name)).exists()]
    if missing:
        fail(f"{onnx_dir}: incomplete ONNX export, missing {', '.join(map(str, missing))}; {again}")


@app.command("onnx-parity")
def onnx_parity_cli(
    model: str = typer.Argument(..., help="The PyTorch pipeline (directory or package) that was exported"),
    onnx_dir: Path = typer.Argument(..., help="export-onnx's OUTPUT_DIR"),
    data_path: Path = typer.Argument(..., help="DocBin (.spacy) with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Parity JSON to write"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N documents"),
) -> None:
    """Compare the ONNX export in ONNX_DIR with MODEL on DATA_PATH's gold tokens."""
    require_extras("pos-ner onnx-parity", "onnx", "evaluate")
    check_export(onnx_dir, model)
    require_file(data_path, "DocBin (.spacy) file")
    check_outputs([output_path], [model_location(model), onnx_dir, data_path])
    from ..onnx.runtime import format_table, parity

    nlp = load_pipeline(model)
    gold_docs = read_docbin(data_path, nlp.vocab)[:limit]
    try:
        result = parity(nlp, onnx_dir, gold_docs, batch_size=batch_size)
    except Exception as error:
        if not type(error).__module__.startswith("onnxruntime") or debug():
            raise
        reason = f"{type(error).__name__}: {one_line(error, 200)}"
        fail(f"{onnx_dir}: cannot load the ONNX export ({reason}); run `pos-ner export-onnx {model} {onnx_dir}` again")
    result.update({"model": model, "onnx_dir": str(onnx_dir), "data": str(data_path)})
    write_text(output_path, json.dumps(result, indent=2))
    typer.echo(format_table(result))
