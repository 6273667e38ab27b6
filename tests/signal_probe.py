"""`python -m signal_probe ARGS`: `python -m pos_ner ARGS` that reports on stderr
the states of a `predict` run, so that a test sends its signal at a known point
of the run instead of after a guessed delay:

    pos-ner-probe: loading     the model is about to be loaded (the temporary output exists)
    pos-ner-probe: loaded      the model is loaded; the first batch comes next
    pos-ner-probe: record N    record N (PROBE_RECORD, default 100) is about to be written

The entry point, the signal handlers and the clean-up are the command's own (it
runs `pos_ner/__main__.py` under `-m`, as a user's `python -m pos_ner` does).

PROBE_SIGNAL_IN_LOAD=set_name|exec makes the process send itself PROBE_SIGNAL
(INT or TERM) while the model loads, where the signal's exception does not
reach the command as itself: `set_name` inside a descriptor's `__set_name__`
while a class is created (CPython 3.11 turns the exception into RuntimeError;
transformers' lazy import then into ModuleNotFoundError, as when a module is
imported at that moment), `exec` inside code run from a string (namedtuple and
dataclass creation).
"""

import os
import runpy
import signal

import pos_ner.cli._util as util
import pos_ner.cli.predict as predict

PREFIX = "pos-ner-probe:"


def report(state: str) -> None:
    os.write(2, f"{PREFIX} {state}\n".encode())


def signal_self() -> None:
    os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("PROBE_SIGNAL", "INT")))
    for _ in range(1000):  # the handler runs here, at a backward jump, still in this frame
        pass


class Field:
    def __set_name__(self, owner: type, name: str) -> None:
        signal_self()


def load_with_signal(load):
    def load_model(*args, **kwargs):
        where = os.environ["PROBE_SIGNAL_IN_LOAD"]
        if where == "set_name":
            try:

                class Model:  # what a module imported while the model loads does
                    field = Field()

            except RuntimeError as error:
                raise ModuleNotFoundError("Could not import module 'AutoModel'.") from error
        elif where == "exec":
            exec("signal_self()", {"signal_self": signal_self})
        return load(*args, **kwargs)

    return load_model


def probe() -> None:
    load_pipeline = predict.load_pipeline
    output_record = predict.output_record
    at = int(os.environ.get("PROBE_RECORD", "100"))
    written = 0

    def reporting_load_pipeline(*args, **kwargs):
        report("loading")
        nlp = load_pipeline(*args, **kwargs)
        report("loaded")
        return nlp

    def counting_output_record(*args, **kwargs):
        nonlocal written
        written += 1
        if written == at:
            report(f"record {at}")
        return output_record(*args, **kwargs)

    predict.load_pipeline = reporting_load_pipeline
    predict.output_record = counting_output_record
    if os.environ.get("PROBE_SIGNAL_IN_LOAD"):
        util.load = load_with_signal(util.load)


if __name__ == "__main__":
    probe()
    runpy.run_module("pos_ner", run_name="__main__", alter_sys=True)
