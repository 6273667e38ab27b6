"""The service's Prometheus metrics: each app has its own registry
(`app.state.registry`, served at GET /metrics), so two apps in one process
never share or clash over counters."""

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """The service's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ner_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("ner_errors", "Rejected or failed requests", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "ner_request_duration_seconds", "Request latency", ["endpoint"], registry=self.registry
        )
        self.texts = Counter("ner_texts", "Texts processed", registry=self.registry)
        self.words = Counter("ner_words", "Words (tokens) processed", registry=self.registry)
