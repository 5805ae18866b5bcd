"""Read /metrics the way Prometheus does: prometheus_client's own parser, which rejects malformed text."""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples, name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def scrape(base_url: str, **headers: str) -> list[tuple[str, dict[str, str], float]]:
    # A fresh connection per scrape, so with several workers any of them may answer.
    response = httpx.get(f"{base_url}/metrics", headers={"connection": "close", **headers}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
