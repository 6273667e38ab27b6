from pathlib import Path

import typer

from ._util import app, fail


@app.command("export-onnx")
def export_onnx_cli(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    output_dir: Path = typer.Argument(..., help="Folder for the ONNX model, tokenizers and meta"),
    opset: int = typer.Option(18, "--opset", min=18, help="ONNX opset (torch's exporter starts at 18)"),
    quantize: bool = typer.Option(False, "--quantize", help="Also write a dynamic int8 model (model.int8.onnx)"),
) -> None:
    """Export MODEL's encoder, tagger and pos_ner classifier to OUTPUT_DIR as ONNX."""
    from ..onnx.export import export

    try:
        meta = export(model, output_dir, opset=opset, quantize=quantize)
    except ValueError as err:
        fail(str(err))
    typer.echo(f"wrote {', '.join(meta['models'].values())} to {output_dir}")
