"""Run a pipeline exported by `pos_ner.onnx.export` with onnxruntime, and
check it against the PyTorch pipeline.

`OnnxNer` needs no torch: spaCy's tokenizer builds the Docs, the Hugging Face
tokenizer makes the wordpiece windows (the same windows as the pipeline's span
getter and the offset-mapping alignment of spacy-transformers), onnxruntime runs the graph and
the component's own decoding (`pos_ner.pipeline_component.set_entities`) sets
`doc.ents` and `ent._.confidence`; the predicted tags go to `token.tag_`.

`onnx_pipeline` wraps it as a spaCy `Language` (the export's tokenizer, then
one component, factory `pos_ner_onnx`), so `pos-ner predict`, `serve` and
`annotate` run an export with `--backend onnx` / `onnx-int8` through the same
code, and write the same records, as a trained pipeline.

`parity` compares both paths on gold tokens (entity and tag agreement,
probability differences, seqeval F1 for fp32 and int8).
"""

import json
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
import onnxruntime
import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import minibatch
from spacy.vocab import Vocab, create_vocab
from thinc.api import NumpyOps

from .. import onnx_component  # noqa: F401  (registers the pos_ner_onnx factory onnx_pipeline adds)
from ..decoding import Calibration, tag_names
from ..layers.length_groups import length_groups
from ..pipeline_component import install_extensions, set_entities
from ..thresholds import Thresholds
from ..windows import WORDPIECE_WINDOWS, WordpieceCounter, doc_windows
from . import META_FILE


def hash_rows(keys: numpy.ndarray, seed: int, n_rows: int) -> numpy.ndarray:
    """The embedding rows thinc's HashEmbed picks for the attribute values
    `keys` (4 per value): the same hash, seed and modulo (used by the export for
    the tagger's labels and here for the other attributes)."""
    hashed = NumpyOps().hash(numpy.ascontiguousarray(keys, dtype="uint64"), seed)
    return numpy.asarray(hashed % n_rows, dtype="int64")


class OnnxNer:
    """An exported transformer → tagger → pos_ner pipeline on onnxruntime.
    Predicted tags replace any tags the input Docs have."""

    def __init__(
        self,
        path: Union[str, Path],
        quantized: bool = False,
        threads: int = 0,
        vocab: Optional[Vocab] = None,
        memory_arena: bool = True,
        memory_pattern: bool = False,
        max_batch_tokens: int = 4096,
    ):
        """`vocab`: the Vocab the tokenizer makes Docs with (default: a new one
        for the export's language). `memory_arena`: onnxruntime's CPU memory
        arena (reused buffers; on by default); `memory_pattern`: its per-shape
        allocation plans, off by default since they hold more memory for no
        speed (see docs/onnx.md, measured in the project's benchmarks). `max_batch_tokens`:
        the most tokens of one graph run (documents of similar length together)."""
        from transformers import AutoTokenizer

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise ValueError(f"{path}: not an ONNX export (no {META_FILE}; `pos-ner export-onnx` writes one)")
        self.meta = json.loads(meta_path.read_text(encoding="utf8"))
        variant = "int8" if quantized else "fp32"
        if variant not in self.meta["models"]:
            raise ValueError(f"{path} has no {variant} model (export with --quantize)")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_cpu_mem_arena = memory_arena
        options.enable_mem_pattern = memory_pattern
        self.session = onnxruntime.InferenceSession(
            str(path / self.meta["models"][variant]), options, providers=["CPUExecutionProvider"]
        )
        hf_path = str(path / self.meta["hf_tokenizer"])
        self.hf_tokenizer = AutoTokenizer.from_pretrained(hf_path, **self.meta["tokenizer_config"])
        self.wordpiece_counts = WordpieceCounter(self.hf_tokenizer)
        # Not spacy.blank: it would load every installed spaCy plugin (spacy-transformers imports torch).
        if vocab is None:
            vocab = create_vocab(self.meta["lang"], spacy.util.get_lang_class(self.meta["lang"]).Defaults)
        self.vocab = vocab
        self.tokenizer = Tokenizer(self.vocab).from_disk(path / self.meta["spacy_tokenizer"])
        self.tag_names = list(self.meta["ner_tags"])
        if tag_names(self.meta["labels"]) != self.tag_names:
            raise ValueError("the pos_ner code orders the BIO tags differently from the exported model")
        # Exports from before learned transitions have no key: none.
        steps = self.meta.get("ner_transitions")
        self.transitions = None if steps is None else numpy.asarray(steps, dtype=numpy.float64)
        # Exports from before calibration have neither key: the identity and no threshold.
        self.calibration = Calibration.from_dict(self.meta.get("calibration"))
        self.thresholds = Thresholds.from_value(self.meta.get("min_confidence"), f"{meta_path}: min_confidence")
        self.max_batch_tokens = max_batch_tokens
        install_extensions()

    def __call__(self, item: Union[str, Doc]) -> Doc:
        return next(self.pipe([item]))

    def pipe(self, items: Iterable[Union[str, Doc]], batch_size: int = 32) -> Iterator[Doc]:
        """Annotate texts or Docs (Docs are annotated in place), in batches."""
        batch = []
        for item in items:
            batch.append(self.tokenizer(item) if isinstance(item, str) else item)
            if len(batch) == batch_size:
                yield from self.annotate(batch)
                batch = []
        if batch:
            yield from self.annotate(batch)

    def annotate(self, docs: List[Doc]) -> List[Doc]:
        tag_ids, _, probs = self.predict(docs)
        self.set_annotations(docs, tag_ids, probs)
        return docs

    def set_annotations(self, docs: List[Doc], tag_ids: List[numpy.ndarray], probs: List[numpy.ndarray]) -> None:
        """Set the tags, then decode the entities with pos_ner's own code."""
        labels = self.meta["tagger_labels"]
        for doc, doc_tags in zip(docs, tag_ids):
            for token, tag_id in zip(doc, doc_tags):
                token.tag_ = labels[tag_id]
        set_entities(docs, probs, self.tag_names, self.transitions, self.calibration, self.thresholds)

    def predict(self, docs: Sequence[Doc]) -> Tuple[List[numpy.ndarray], List[numpy.ndarray], List[numpy.ndarray]]:
        """Per doc: tag ids, tagger scores and NER probabilities (over meta["ner_tags"]).

        The documents run in groups of similar length of at most `max_batch_tokens`
        tokens (as the pipeline's transformer does), so that the windows of a short
        document are not padded to a long one's."""
        outputs: List[Any] = [None] * len(docs)
        for group in length_groups([len(doc) for doc in docs], self.max_batch_tokens):
            for i, doc_outputs in zip(group, zip(*self._predict_group([docs[i] for i in group]))):
                outputs[i] = doc_outputs
        tag_ids, tag_scores, ner_probs = (list(column) for column in zip(*outputs)) if docs else ([], [], [])
        return tag_ids, tag_scores, ner_probs

    def _predict_group(
        self, docs: Sequence[Doc]
    ) -> Tuple[List[numpy.ndarray], List[numpy.ndarray], List[numpy.ndarray]]:
        lengths = [len(doc) for doc in docs]
        n_tags, n_ner = len(self.meta["tagger_labels"]), len(self.meta["ner_tags"])
        if not sum(lengths):
            outputs = (numpy.zeros((0,), "int64"), numpy.zeros((0, n_tags), "f"), numpy.zeros((0, n_ner), "f"))
        else:
            outputs = self.session.run(["tag_ids", "tag_scores", "ner_probs"], self.encode(docs))
        splits = numpy.cumsum(lengths)[:-1]
        tag_ids, tag_scores, ner_probs = (numpy.split(output, splits) for output in outputs)
        return tag_ids, tag_scores, ner_probs

    def windows(self, doc: Doc) -> List[Tuple[int, int]]:
        """The token windows of the exported span getter: bounded in wordpieces
        (pos_ner.wordpiece_windows.v1, of whole sentences with its `sentences`) or
        in tokens (spacy-transformers' strided_spans)."""
        if self.meta.get("span_getter") == WORDPIECE_WINDOWS:
            lengths = self.wordpiece_counts(doc)
        else:
            lengths = [1] * len(doc)
        return doc_windows(doc, lengths, self.meta["window"], self.meta["stride"], self.meta.get("sentences", False))

    def encode(self, docs: Sequence[Doc]) -> Dict[str, numpy.ndarray]:
        """The graph's inputs: wordpiece windows of all docs and, per token, the
        indices (into windows × wordpieces) and mean weights of its wordpieces."""
        spans = [(i, doc[start:end]) for i, doc in enumerate(docs) for start, end in self.windows(doc)]
        encoding = self.hf_tokenizer(
            [span.text for _, span in spans],
            add_special_tokens=True,
            return_attention_mask=True,
            return_offsets_mapping=True,
            return_tensors="np",
            padding="longest",
            verbose=False,  # a window over the maximum (one long token) is cut below: its warning is untrue
        )
        # spacy-transformers drops the wordpieces beyond the model's maximum length.
        width = min(encoding["input_ids"].shape[1], self.meta["max_length"])
        first_token = numpy.cumsum([0] + [len(doc) for doc in docs])
        pieces: List[set] = [set() for _ in range(first_token[-1])]
        for w, (i, span) in enumerate(spans):
            # Each token owns its characters and the one after it (as in spacy-transformers' alignment).
            char_to_token = numpy.full(len(span.text) + 1, -1)
            for token in span:
                start = token.idx - span.start_char
                char_to_token[start : start + len(token) + 1] = first_token[i] + token.i
            for j, (start, end) in enumerate(encoding["offset_mapping"][w][:width]):
                for token_i in set(char_to_token[start:end].tolist()) - {-1}:
                    pieces[token_i].add(w * width + j)
        n_pieces = max(1, max(len(p) for p in pieces))
        pool_index = numpy.zeros((len(pieces), n_pieces), dtype="int64")
        pool_weight = numpy.zeros((len(pieces), n_pieces), dtype="float32")
        for i, token_pieces in enumerate(pieces):
            if token_pieces:  # tokens without wordpieces (whitespace) pool to zeros, as in thinc
                pool_index[i, : len(token_pieces)] = sorted(token_pieces)
                pool_weight[i, : len(token_pieces)] = 1.0 / len(token_pieces)
        names = [name for name in self.meta["inputs"] if name in encoding]
        feed = {name: encoding[name][:, :width].astype("int64") for name in names}
        feed.update(pool_index=pool_index, pool_weight=pool_weight)
        if "feature_rows" in self.meta["inputs"]:
            feed["feature_rows"] = self.feature_rows(docs)
        return feed

    def feature_rows(self, docs: Sequence[Doc]) -> numpy.ndarray:
        """Per token and hashed attribute (meta["hashed_features"]), the 4
        embedding rows the component's MultiHashEmbed would look up."""
        hashed = self.meta["hashed_features"]
        attrs = [f["attr"] for f in hashed]
        keys = numpy.concatenate([doc.to_array(attrs).reshape(len(doc), len(attrs)) for doc in docs])
        columns = [hash_rows(keys[:, i], f["seed"], f["rows"]) for i, f in enumerate(hashed)]
        return numpy.stack(columns, axis=1)


class OnnxNerPipe:
    """`OnnxNer` as a spaCy pipeline component (factory `pos_ner_onnx`): sets
    `token.tag_`, `doc.ents` and `ent._.confidence` as the trained pipeline's
    tagger and ner do."""

    def __init__(self, ner: OnnxNer, name: str = "ner"):
        self.ner, self.name = ner, name

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.ner.meta["labels"])

    def __call__(self, doc: Doc) -> Doc:
        return self.ner.annotate([doc])[0]

    def pipe(self, docs: Iterable[Doc], batch_size: int = 32) -> Iterator[Doc]:
        for batch in minibatch(docs, size=batch_size):
            yield from self.ner.annotate(list(batch))


def onnx_pipeline(
    path: Union[str, Path],
    quantized: bool = False,
    threads: int = 0,
    memory_arena: bool = True,
    memory_pattern: bool = False,
) -> Language:
    """An ONNX export as a spaCy `Language`: its tokenizer, then `pos_ner_onnx`.
    Its meta has the source model's name and version (exports from before
    they were recorded: name "onnx_export"), so /health names the model."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise ValueError(f"{path}: not an ONNX export (no {META_FILE}; `pos-ner export-onnx` writes one)")
    meta = json.loads(meta_path.read_text(encoding="utf8"))
    nlp = spacy.util.get_lang_class(meta["lang"])()
    nlp.tokenizer = Tokenizer(nlp.vocab).from_disk(path / meta["spacy_tokenizer"])
    config = {"path": str(path), "quantized": quantized, "threads": threads}
    config.update(memory_arena=memory_arena, memory_pattern=memory_pattern)
    nlp.add_pipe("pos_ner_onnx", name="ner", config=config)
    variant = "int8" if quantized else "fp32"
    nlp.meta.update(
        name=meta.get("name", "onnx_export"),
        version=meta.get("version", "0.0.0"),
        spacy_version=meta.get("spacy_version", nlp.meta.get("spacy_version", "")),
        description=f"ONNX {variant} export of {meta.get('name', 'a pos_ner pipeline')}",
    )
    return nlp


def entity_set(docs: List[Doc]) -> set:
    return {(i, ent.start, ent.end, ent.label_) for i, doc in enumerate(docs) for ent in doc.ents}


def confidences(docs: List[Doc]) -> Dict[Tuple[int, int, int, str], float]:
    return {(i, e.start, e.end, e.label_): e._.confidence for i, doc in enumerate(docs) for e in doc.ents}


def parity(nlp, onnx_dir: Path, gold_docs: List[Doc], batch_size: int = 32) -> Dict:
    """Run the PyTorch pipeline `nlp` and the ONNX model(s) in `onnx_dir` on the
    gold tokens; entity agreement is |same (start, end, label)| / |union|;
    `max_confidence_diff` is the largest |ent._.confidence difference| over
    the entities both found (after the calibration both carry)."""
    # Imported here: seqeval pulls in scikit-learn and SciPy, which OnnxNer does not need.
    from seqeval.metrics import f1_score

    from ..evaluation.scores import bio_tags, gold_token_docs

    def micro_f1(docs: List[Doc]) -> float:
        return float(f1_score([bio_tags(d) for d in gold_docs], [bio_tags(d) for d in docs], zero_division=0))

    start = time.perf_counter()
    reference = list(nlp.pipe(gold_token_docs(nlp.vocab, gold_docs), batch_size=batch_size))
    seconds = time.perf_counter() - start
    ner = next(nlp.get_pipe(name) for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "pos_ner")
    ref_probs = [p for i in range(0, len(reference), batch_size) for p in ner.predict(reference[i : i + batch_size])]
    ref_ents = entity_set(reference)
    n_words = sum(len(doc) for doc in gold_docs)
    result: Dict[str, Any] = {
        "n_docs": len(gold_docs),
        "n_words": n_words,
        "pytorch": {"entities": len(ref_ents), "f1": micro_f1(reference), "words_per_second": n_words / seconds},
    }
    variants = ["fp32"] + (["int8"] if "int8" in json.loads((onnx_dir / META_FILE).read_text())["models"] else [])
    for variant in variants:
        onnx_ner = OnnxNer(onnx_dir, quantized=variant == "int8")
        docs, probs = gold_token_docs(nlp.vocab, gold_docs), []
        start = time.perf_counter()
        for i in range(0, len(docs), batch_size):
            tag_ids, _, batch_probs = onnx_ner.predict(docs[i : i + batch_size])
            onnx_ner.set_annotations(docs[i : i + batch_size], tag_ids, batch_probs)
            probs.extend(batch_probs)
        seconds = time.perf_counter() - start
        ents = entity_set(docs)
        ref_conf, conf = confidences(reference), confidences(docs)
        both = ref_conf.keys() & conf.keys()
        tag_pairs = [(a.tag_, b.tag_) for ref, doc in zip(reference, docs) for a, b in zip(ref, doc)]
        f1 = micro_f1(docs)
        result[variant] = {
            "entities": len(ents),
            "entity_agreement": len(ents & ref_ents) / len(ents | ref_ents) if ents | ref_ents else 1.0,
            "tag_agreement": sum(a == b for a, b in tag_pairs) / len(tag_pairs) if tag_pairs else 1.0,
            "max_prob_diff": max((float(abs(p - q).max()) for p, q in zip(probs, ref_probs) if len(p)), default=0.0),
            "max_confidence_diff": max((abs(conf[key] - ref_conf[key]) for key in both), default=0.0),
            "f1": f1,
            "f1_change": f1 - result["pytorch"]["f1"],
            "words_per_second": n_words / seconds,
        }
    return result


def format_table(result: Dict) -> str:
    rows = [("path", "entities", "ent agree", "tag agree", "max |dp|", "max |dconf|", "F1", "ΔF1", "words/s")]
    torch_row = result["pytorch"]
    rows.append(
        (
            "pytorch",
            str(torch_row["entities"]),
            "-",
            "-",
            "-",
            "-",
            f"{100 * torch_row['f1']:.2f}",
            "-",
            f"{torch_row['words_per_second']:.0f}",
        )
    )
    for variant in ("fp32", "int8"):
        if variant in result:
            r = result[variant]
            rows.append(
                (
                    f"onnx {variant}",
                    str(r["entities"]),
                    f"{100 * r['entity_agreement']:.2f}",
                    f"{100 * r['tag_agreement']:.2f}",
                    f"{r['max_prob_diff']:.1e}",
                    f"{r.get('max_confidence_diff', 0.0):.1e}",
                    f"{100 * r['f1']:.2f}",
                    f"{100 * r['f1_change']:+.2f}",
                    f"{r['words_per_second']:.0f}",
                )
            )
    return "\n".join("  ".join(cell.rjust(10) for cell in row) for row in rows)
