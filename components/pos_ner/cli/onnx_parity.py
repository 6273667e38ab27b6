import json
from pathlib import Path
from typing import Optional

import typer

from ._util import app


@app.command("onnx-parity")
def onnx_parity_cli(
    model: str = typer.Argument(..., help="The PyTorch pipeline (directory or package) that was exported"),
    onnx_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="export-onnx's OUTPUT_DIR"),
    data_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin (.spacy) with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Parity JSON to write"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N documents"),
) -> None:
    """Compare the ONNX export in ONNX_DIR with MODEL on DATA_PATH's gold tokens."""
    import spacy
    from spacy.tokens import DocBin

    from ..onnx.runtime import format_table, parity

    nlp = spacy.load(model)
    gold_docs = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))[:limit]
    result = parity(nlp, onnx_dir, gold_docs, batch_size=batch_size)
    result.update({"model": model, "onnx_dir": str(onnx_dir), "data": str(data_path)})
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(result, indent=2), encoding="utf8")
    typer.echo(format_table(result))
