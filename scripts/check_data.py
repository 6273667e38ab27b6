"""Fail early, saying what to do, when the training data is not where the project looks."""
from pathlib import Path
from typing import List

import typer


def main(data_dir: Path, file_names: List[str]):
    """Check that each of FILE_NAMES exists in DATA_DIR."""
    missing = [name for name in file_names if not (data_dir / name).is_file()]
    if missing:
        typer.echo(
            f"Data not found: {', '.join(str(data_dir / name) for name in missing)}\n"
            f"Put {', '.join(file_names)} in one folder and pass it to the project, e.g.\n"
            f"  spacy project run all . --vars.data_dir /path/to/conll2003\n"
            f"(`spacy project assets` then verifies the files' checksums.)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"Found {', '.join(file_names)} in {data_dir}")


if __name__ == "__main__":
    typer.run(main)
