"""The Hugging Face baseline of the comparison (configs/compare.yml, `hf_trainer`):
`AutoModelForTokenClassification` fine-tuned with `Trainer` on single sentences,
the label of each word on its first subword, argmax decoding, and scored with
seqeval on the gold tokens, exactly as `pos-ner evaluate` scores the spaCy
pipelines (the same functions, documents as the sequences). From the checkout's root:

    python -m scripts.hf_baseline train ENCODER TRAIN.spacy OUTPUT_DIR
    python -m scripts.hf_baseline evaluate OUTPUT_DIR TEST.spacy --output test.json
"""

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import spacy
import torch
import typer
from seqeval.metrics import accuracy_score
from spacy.tokens import DocBin
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    TrainingArguments,
)
from transformers.trainer import Trainer  # the same class; mypy reads the top-level name as a dummy

from pos_ner.evaluation.scores import bio_tags, entity_scores

IGNORED = -100  # label id the loss skips: special tokens and non-first subwords
app = typer.Typer(add_completion=False)


def read_sentences(path: Path) -> List[List[Tuple[List[str], List[str]]]]:
    """Per document, its sentences as (words, BIO tags), from the DocBin's gold annotation."""
    documents = []
    for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab):
        tags = bio_tags(doc)
        documents.append([([t.text for t in s], tags[s.start : s.end]) for s in doc.sents])
    return documents


def encode(tokenizer, words: List[str], max_length: int):
    """The encoding of one sentence and, per word, the index of its first subword (None if truncated away)."""
    encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    first: List[Optional[int]] = [None] * len(words)
    for position, word in enumerate(encoding.word_ids()):
        if word is not None and first[word] is None:
            first[word] = position
    return encoding, first


def max_length_of(tokenizer, model) -> int:
    return min(tokenizer.model_max_length, model.config.max_position_embeddings)


def labelled_dataset(encoder: str, train_path: Path):
    """The tokenizer, a token-classification model with the corpus' BIO labels, the
    training sentences encoded with each word's label on its first subword, and how
    many words were truncated away."""
    sentences = [s for doc in read_sentences(train_path) for s in doc]
    labels = ["O"] + sorted({tag for _, tags in sentences for tag in tags} - {"O"}, key=lambda t: (t[2:], t[0]))
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModelForTokenClassification.from_pretrained(
        encoder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    max_length = max_length_of(tokenizer, model)
    dataset, truncated = [], 0
    for words, tags in sentences:
        encoding, first = encode(tokenizer, words, max_length)
        ids = [IGNORED] * len(encoding["input_ids"])
        for position, tag in zip(first, tags):
            if position is None:
                truncated += 1
            else:
                ids[position] = label_ids[tag]
        dataset.append({**encoding, "labels": ids})
    return tokenizer, model, dataset, truncated


def training_arguments(output_dir: Path, **arguments) -> TrainingArguments:
    """The baseline's Trainer arguments: linear schedule, no checkpoints, no
    evaluation during training, no reporting; `arguments` add to or replace them."""
    fixed = {
        "lr_scheduler_type": "linear",
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": [],
    }
    return TrainingArguments(output_dir=str(output_dir), **{**fixed, **arguments})


@app.command()
def train(
    encoder: str = typer.Argument(..., help="Hugging Face model name or local folder"),
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin with gold entities"),
    output_dir: Path = typer.Argument(..., help="Where the fine-tuned model and tokenizer are saved"),
    epochs: float = typer.Option(1.0, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
    learning_rate: float = typer.Option(2e-4, "--learning-rate"),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm"),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences per step"),
    warmup_share: float = typer.Option(0.1, "--warmup-share", help="Share of the steps with linear warmup"),
    gpu: str = typer.Option("auto", "--gpu", help="'auto' or -1 for the CPU"),
):
    """Fine-tune ENCODER for token classification on the sentences of TRAIN_PATH."""
    tokenizer, model, dataset, truncated = labelled_dataset(encoder, train_path)
    if truncated:
        typer.echo(f"{truncated} words beyond {max_length_of(tokenizer, model)} subwords are not trained on", err=True)
    arguments = training_arguments(
        output_dir / "checkpoints",
        num_train_epochs=epochs,
        seed=seed,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        warmup_ratio=warmup_share,
        logging_steps=50,
        use_cpu=gpu == "-1" or not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model, args=arguments, train_dataset=dataset, data_collator=DataCollatorForTokenClassification(tokenizer)
    )
    trainer.train()
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))


def predict(model, tokenizer, documents, batch_size: int) -> Tuple[List[List[str]], int]:
    """Per document, the argmax tag of each word's first subword ("O" for words truncated away)."""
    max_length = max_length_of(tokenizer, model)
    collator = DataCollatorForTokenClassification(tokenizer)
    flat = [words for doc in documents for words, _ in doc]
    tags: List[List[str]] = []
    truncated = 0
    for start in range(0, len(flat), batch_size):
        encoded = [encode(tokenizer, words, max_length) for words in flat[start : start + batch_size]]
        batch = collator([dict(encoding) for encoding, _ in encoded])
        batch = {key: value.to(model.device) for key, value in batch.items()}
        with torch.no_grad():
            best = model(**batch).logits.argmax(-1).cpu().tolist()
        for (_, first), row in zip(encoded, best):
            truncated += first.count(None)
            tags.append([model.config.id2label[row[p]] if p is not None else "O" for p in first])
    per_doc, i = [], 0
    for doc in documents:
        per_doc.append([tag for sentence in tags[i : i + len(doc)] for tag in sentence])
        i += len(doc)
    return per_doc, truncated


@app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="Output of `train`"),
    data_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Metrics JSON to write"),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences per forward pass"),
):
    """Score the fine-tuned model on DATA_PATH with seqeval; the JSON has evaluate.py's keys."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    if torch.cuda.is_available():
        model = model.cuda()
    documents = read_sentences(data_path)
    start = time.perf_counter()
    predicted, truncated = predict(model, tokenizer, documents, batch_size)
    seconds = time.perf_counter() - start
    gold = [[tag for _, tags in doc for tag in tags] for doc in documents]
    n_words = sum(len(tags) for tags in gold)
    metrics: Dict = {
        "entities": entity_scores(gold, predicted, strict=False),
        "entities_strict_iob2": entity_scores(gold, predicted, strict=True),
        "token_acc": float(accuracy_score(gold, predicted)),
        "n_docs": len(documents),
        "n_words": n_words,
        "n_words_truncated": truncated,
        "seconds": seconds,
        "words_per_second": n_words / seconds if seconds else None,
        "model": str(model_dir),
        "data": str(data_path),
    }
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(metrics, indent=2), encoding="utf8")
    typer.echo(
        f"micro F1 {100 * metrics['entities']['micro']['f1-score']:.2f} on {n_words} words, "
        f"{metrics['words_per_second']:.0f} words/s"
    )


if __name__ == "__main__":
    app()
