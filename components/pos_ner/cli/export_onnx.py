from pathlib import Path

import typer

from ..io.files import atomic_dir, check_output
from ._util import app, fail, load_pipeline, model_location, require_extras


@app.command("export-onnx")
def export_onnx_cli(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    output_dir: Path = typer.Argument(..., help="Folder for the ONNX model, tokenizers and meta"),
    opset: int = typer.Option(18, "--opset", min=18, help="ONNX opset (torch's exporter starts at 18)"),
    quantize: bool = typer.Option(False, "--quantize", help="Also write a dynamic int8 model (model.int8.onnx)"),
) -> None:
    """Export MODEL's encoder, tagger and pos_ner classifier to OUTPUT_DIR as ONNX.

    The export is built in a temporary folder beside OUTPUT_DIR and replaces
    it only when complete, so a failed or interrupted export leaves an
    earlier export intact. OUTPUT_DIR may not be, hold or lie inside MODEL."""
    require_extras("pos-ner export-onnx", "onnx")
    check_output(output_dir, [model_location(model)], is_dir=True)
    nlp = load_pipeline(model)
    from ..onnx.export import export

    try:
        with atomic_dir(output_dir) as tmp_dir:
            meta = export(nlp, tmp_dir, opset=opset, quantize=quantize, source=model)
    except ValueError as err:
        fail(str(err))
    typer.echo(f"wrote {', '.join(meta['models'].values())} to {output_dir}")
