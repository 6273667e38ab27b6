"""One over-long token, two kinds of encoder windows, the same trained weights.

Loads MODEL twice: with the span getter it was trained with, and with its
transformer switched to `pos_ner.TransformerModel.v1` + `pos_ner.wordpiece_windows.v1`.
Prints, for a text whose run of dots is one token of thousands of wordpieces,
how many tokens got no wordpiece (a zero vector) and the entities; writes JSON.

    python -m benchmarks.long_token_probe --model training/pos_ner/model-best \
        --output benchmarks/results/long_token_probe.json
"""

import json
from pathlib import Path

import spacy
import typer

TEXT = "Apple Inc. hired Tim Cook . Revenue " + "." * 2000 + " 2007 , Apple Inc. and IBM ."
WORDPIECE_WINDOWS = {
    "components.transformer.model.@architectures": "pos_ner.TransformerModel.v1",
    "components.transformer.model.get_spans": {
        "@span_getters": "pos_ner.wordpiece_windows.v1",
        "window": 160,
        "stride": 120,
    },
}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def probe(nlp) -> dict:
    doc = nlp(TEXT)
    align = doc._.trf_data.align
    return {
        "get_spans": dict(nlp.config["components"]["transformer"]["model"]["get_spans"]),
        "tokens": len(doc),
        "tokens_without_wordpieces": sum(1 for token in doc if align[token.i].data.size == 0),
        "entities": [[ent.text, ent.label_] for ent in doc.ents],
    }


@app.command(help=__doc__.splitlines()[0])
def main(model: str = typer.Option(...), output: Path = typer.Option(...)) -> None:
    results = {"text": "Apple Inc. hired Tim Cook . Revenue <2,000 dots> 2007 , Apple Inc. and IBM ."}
    results["as_trained"] = probe(spacy.load(model))
    results["wordpiece_windows"] = probe(spacy.load(model, config=WORDPIECE_WINDOWS))
    for name in ("as_trained", "wordpiece_windows"):
        row = results[name]
        print(
            f"{name:<18} {row['get_spans']['@span_getters']:<36} no wordpiece: {row['tokens_without_wordpieces']:>2}"
            f"/{row['tokens']}  entities: {row['entities']}"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2), encoding="utf8")


if __name__ == "__main__":
    app()
