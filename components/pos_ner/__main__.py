"""`python -m pos_ner`: the same entry point as the `pos-ner` command
(SIGTERM cleanup, one-line errors; see `pos_ner.cli`)."""

from .cli import setup_cli

if __name__ == "__main__":
    setup_cli()
