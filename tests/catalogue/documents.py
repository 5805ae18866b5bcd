"""The catalogue the routing tests import: three deployments with every routing fact, an alias with every key
of `routing:` (the format operators script against; none at its default, so its export is the same text), and
the platform settings its loopback URLs need."""

import pytest
from cryptography.fernet import Fernet

from routing.catalogue import load_catalogue_yaml

ROUTING_YAML = """\
providers:
  - name: local
    kind: openai-compatible
    base_url: http://127.0.0.1:9101/v1
    api_key: sk-test
deployments:
  - name: cheap-llama
    provider: local
    model: llama-3.1-8b
    input_per_1m: "0.05"
    output_per_1m: "0.1"
    context_window: 8192
    capabilities: [chat]
    quality: 0.72
    region: eu
    tags: [zero-retention]
    rpm_limit: 600
    tpm_limit: 200000
  - name: mid-mixtral
    provider: local
    model: mixtral-8x7b
    input_per_1m: "0.5"
    output_per_1m: "1"
    quality: 0.8
    region: us
  - name: premium-gpt4
    provider: local
    model: gpt-4o
    input_per_1m: "2.5"
    output_per_1m: "10"
    quality: 0.95
    tags: [zero-retention, soc2]
    tpm_limit: 2000000
aliases:
  - name: claude-sonnet
    deployments: [premium-gpt4]
  - name: smart
    deployments: [cheap-llama, mid-mixtral, premium-gpt4]
    routing:
      strategy: cheapest
      min_quality: 0.7
      weights: {cheap-llama: 3, premium-gpt4: 1}
      fallbacks: [claude-sonnet]
      retry: {max_attempts: 3, base_delay_ms: 50, max_delay_ms: 1000, deadline_ms: 20000}
      breaker:
        {consecutive_failures: 3, error_rate: 0.25, window_s: 60, cooldown_s: 10, half_open_probes: 2, min_calls: 20}
      experiment: {name: llama-vs-mixtral, arms: {cheap-llama: 90, mid-mixtral: 10}}
      bandit: {weights: {quality: 1.0, cost: 0.3, latency: 0.0}, exploration: 0.1}
"""


def routing_catalogue() -> dict:
    return load_catalogue_yaml(text=ROUTING_YAML)


@pytest.fixture
def platform(settings):
    # The upstreams are on loopback; say so here rather than trust the environment the settings read.
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = True
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = False
    settings.TOLLWAY_FERNET_KEYS = [Fernet.generate_key().decode()]
