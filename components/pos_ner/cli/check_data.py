from pathlib import Path
from typing import List

import typer

from ._util import app, fail


@app.command("check-data")
def check_data_cli(
    data_dir: Path = typer.Argument(..., help="Folder that should hold the files"),
    file_names: List[str] = typer.Argument(..., help="File names expected in DATA_DIR"),
) -> None:
    """Check that each of FILE_NAMES is in DATA_DIR, and say how to point to them if not.
    Empty names (e.g. no dev file) are skipped."""
    file_names = [name for name in file_names if name]
    missing = [name for name in file_names if not (data_dir / name).is_file()]
    if missing:
        fail(
            f"Data not found: {', '.join(str(data_dir / name) for name in missing)}\n"
            f"Put {', '.join(file_names)} in one folder and pass it to the project, e.g.\n"
            f"  spacy project run all . --vars.data_dir /path/to/conll2003\n"
            f"or name your own files: --vars.train T --vars.dev D --vars.test E (README: Train on your own data).\n"
            f"(For CoNLL-2003, `spacy project assets` then verifies the files' checksums.)"
        )
    typer.echo(f"Found {', '.join(file_names)} in {data_dir}")
