"""The scheduler: all pipeline work in one thread, round-robin over requests,
with the batches of concurrent requests run together.

spaCy pipelines are not thread-safe, and `nlp.memory_zone()` switches
process-wide state (the vocab's and string store's memory pool), so every
pipeline call runs in the `RoundRobinWorker`'s one thread, and memory zones
never overlap. A request is a job cut into steps (a `Job`: count its tokens,
then its texts packed by `batches`), and the worker runs one step of each
waiting job in turn, so a small request waits for at most one batch of each
request ahead of it, never for whole requests. A text is never split, so a
step is bounded by the app's per-text limit too. The waiting batches of
concurrent requests are run together, up to the same limits, in one pipeline
call (micro-batching: they share one call's overhead and one copy of the
model). If a shared call fails, its batches are rerun one by one, so only the
request whose texts fail gets the error.
"""

import contextlib
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Deque, Generator, Iterator, List, Optional, Sequence


class Batch:
    """What a job yields to have texts run through the pipeline: the worker
    sends back their results (`run_batch`'s, one per text, in order), possibly
    after running them in one call with other jobs' batches."""

    __slots__ = ("texts", "tokens")

    def __init__(self, texts: List[str], tokens: int):
        self.texts, self.tokens = texts, tokens


# A job yields None to take turns, or a Batch and gets its results sent back.
Job = Generator[Optional[Batch], Optional[List[Any]], Any]


class _Entry:
    __slots__ = ("job", "future", "batch")

    def __init__(self, job: Job, future: "Future[Any]"):
        self.job, self.future = job, future
        self.batch: Optional[Batch] = None  # yielded, waiting for its results


class RoundRobinWorker:
    """Runs jobs in one thread, one step at a time, taking turns, and runs the
    batches that waiting jobs yield together.

    A job is a generator: each step runs it to its next `yield`, and its return
    value is the job's result. It yields None between steps of its own work, or
    a `Batch` of texts: the worker then sends it `run_batch(texts)`. A worker
    step advances every queued job that is not waiting for results by one step,
    in queue order, then makes one `run_batch` call over the waiting batches,
    the longest-waiting first, up to `max_tokens` tokens and `max_texts` texts
    (the first always goes). Concurrent one-text requests therefore share one
    pipeline call instead of queueing for a call each. If a shared call
    raises, each of its batches is run on its own, so only the job whose texts
    fail gets the error (thrown into it). A job that has taken its step goes
    to the back of the queue, behind the jobs submitted meanwhile; a waiting
    batch that did not fit keeps its place at the front. The thread starts with
    the first job and stops with `close()` (the app's shutdown); a later job
    starts it again.
    """

    def __init__(
        self,
        run_batch: Optional[Callable[[List[str]], List[Any]]] = None,
        max_tokens: int = 512,
        max_texts: int = 32,
        name: str = "ner-worker",
    ):
        self.run_batch, self.max_tokens, self.max_texts, self.name = run_batch, max_tokens, max_texts, name
        self._jobs: Deque[_Entry] = deque()
        self._wake = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._closing = False

    def submit(self, job: Job) -> "Future[Any]":
        """Queue `job`; the future has its result or the exception it raised."""
        future: Future[Any] = Future()
        with self._wake:
            self._jobs.append(_Entry(job, future))
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the running step, fail the queued jobs and stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._wake:
            while self._jobs:
                entry = self._jobs.popleft()
                entry.job.close()
                settle(entry.future, error=RuntimeError("the server is shutting down"))

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                queued = list(self._jobs)
                self._jobs.clear()
            for entry in queued:
                if entry.batch is None:
                    self._step(entry, None)
            waiting = [entry for entry in queued if entry.batch is not None and self._alive(entry)]
            chosen = self._choose(waiting)
            if chosen:
                self._run_batches(chosen)
            chosen_ids = {id(entry) for entry in chosen}
            front = [entry for entry in waiting if id(entry) not in chosen_ids and self._alive(entry)]
            front_ids = {id(entry) for entry in front}
            # stepped and chosen jobs go behind the ones submitted meanwhile; waiting batches stay in front
            back = [entry for entry in queued if id(entry) not in front_ids and self._alive(entry)]
            with self._wake:
                arrived = list(self._jobs)
                self._jobs.clear()
                self._jobs.extend(front + arrived + back)

    def _alive(self, entry: _Entry) -> bool:
        return not entry.future.done()

    def _step(self, entry: _Entry, results: Optional[List[Any]], error: Optional[BaseException] = None) -> bool:
        """Run the job to its next yield (sending it `results`, or throwing
        `error` into it); False once it has finished, failed or was cancelled."""
        if entry.future.cancelled():  # its request is gone: don't spend the pipeline on it
            entry.job.close()
            return False
        try:
            value = entry.job.throw(error) if error is not None else entry.job.send(results)
        except StopIteration as done:
            settle(entry.future, result=done.value)
            return False
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting request, which reports it
            settle(entry.future, error=err)
            return False
        entry.batch = value if isinstance(value, Batch) else None
        return True

    def _choose(self, waiting: List[_Entry]) -> List[_Entry]:
        """The waiting batches that go into the next call, in queue order, within the limits."""
        chosen: List[_Entry] = []
        tokens = texts = 0
        for entry in waiting:
            if entry.future.cancelled():
                entry.job.close()
                continue
            batch = entry.batch
            assert batch is not None
            if chosen and (tokens + batch.tokens > self.max_tokens or texts + len(batch.texts) > self.max_texts):
                continue
            chosen.append(entry)
            tokens, texts = tokens + batch.tokens, texts + len(batch.texts)
        return chosen

    def _run_batches(self, chosen: List[_Entry]) -> None:
        if self.run_batch is None:
            raise RuntimeError("a job yielded a Batch, but the worker has no run_batch")
        texts = [text for entry in chosen for text in entry.batch.texts]  # type: ignore[union-attr]
        try:
            results = self.run_batch(texts)
        except BaseException as err:  # noqa: BLE001 - handed to the job whose texts fail
            if len(chosen) == 1:
                self._step(chosen[0], None, err)
            else:  # one by one, so only the failing job gets the error
                for entry in chosen:
                    self._run_batches([entry])
            return
        offset = 0
        for entry in chosen:
            n = len(entry.batch.texts)  # type: ignore[union-attr]
            self._step(entry, results[offset : offset + n])
            offset += n


def settle(future: "Future[Any]", result: Any = None, error: Optional[BaseException] = None) -> None:
    """Set a future's outcome unless it was cancelled meanwhile (its request went away)."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> Iterator[List[int]]:
    """Indices of consecutive texts, packed up to `max_tokens` tokens and `max_texts` texts (at least one text)."""
    batch: List[int] = []
    tokens = 0
    for i, length in enumerate(lengths):
        if batch and (tokens + length > max_tokens or len(batch) >= max_texts):
            yield batch
            batch, tokens = [], 0
        batch.append(i)
        tokens += length
    if batch:
        yield batch
