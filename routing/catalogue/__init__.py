"""The model catalogue as configuration-as-code: import and export providers, deployments and aliases as YAML.

    python manage.py import_catalogue catalogue.yaml     # or - for standard input
    python manage.py export_catalogue [catalogue.yaml]   # standard output by default
    python manage.py rotate_credentials

The format (every section is optional; a field written as null counts as left out):

    providers:
      - name: openai-main              # required; letters, digits, - and _
        kind: openai-compatible        # required; openai | azure-openai | anthropic | gemini | openai-compatible
        base_url: http://127.0.0.1:9101/v1   # required; a trailing / is dropped; checked by routing/ssrf.py,
                                       # unless it is the URL already stored for this provider
        api_key: sk-test               # stored encrypted, never exported
        # api_key_env: OPENAI_API_KEY  # or: the environment variable the key is read from at load time
        # api_key_stored: true         # written by export for a stored key; import accepts and ignores it
        # api_version: "2024-10-21"    # Azure only; default empty (the adapter's default version)
        # timeout_s: 120               # default 120; connect_timeout_s: default 5
        # enabled: true                # default true
    deployments:
      - name: main-gpt-4o-mini         # required; letters, digits, - and _
        provider: openai-main          # required; a provider in this file or already stored
        model: gpt-4o-mini             # required; the upstream's own model id (Azure: the deployment name)
        input_per_1m: "0.15"           # required; USD per million tokens
        output_per_1m: "0.60"          # required
        # cached_input_per_1m: "0.075" # default none
        # context_window: 128000       # default none; max_output_tokens likewise
        # capabilities: [chat, tools]  # any of chat, embeddings, tools, vision, json; default none
        # quality: 0.72                # default none; the operator's score from 0 to 1 (routing's min_quality)
        # region: eu                   # default none; where it runs: a lowercase slug of at most 32 characters
        # tags: [zero-retention]       # default none; at most 20 such slugs
        # rpm_limit: 600               # default none; the provider's quota for it per minute; tpm_limit likewise
        # speaks_responses: false      # default false; true: /v1/responses passes through to its own /responses
        # enabled: true                # default true
    aliases:
      - name: gpt-4o-mini              # required; the `model` clients send
        deployments: [main-gpt-4o-mini]   # required; priority order, first tried first
        # description: ...
        # routing:                     # default: by priority, in the order above
        #   strategy: cheapest         # and the rest of routing/engine/policy.py's format: min_quality, weights,
        #   fallbacks: [gpt-4o]        # fallbacks, retry, breaker, experiment, bandit. Weights and experiment
                                       # arms name this alias's deployments; fallbacks name other aliases, in
                                       # this file or stored (at most 10)

Prices are decimals written as strings or whole numbers. A bare YAML float (0.15) is accepted by converting it
with str(), its shortest spelling, so it means exactly 0.15; quoting is still clearer. Negative, NaN and
infinite prices are refused, as are more than ten decimal places.

Import is an idempotent upsert in one transaction. Every entry is checked first and every problem is reported
with its path (`deployments[2].input_per_1m: not a decimal`); if there is any, nothing is written. Unknown
keys and names defined twice are errors, so a typo never passes silently. Entries the file does not mention
are left alone, but an alias's deployment list is replaced by the file's, in the file's order. Within an
entry the file is the truth: an optional field left out is set back to its default, except the key.

The key: `api_key` stores the key encrypted and clears `api_key_env`; `api_key_env` stores the variable's
name and clears any stored key; with neither, the stored credential is kept. That is why an export, which
writes `api_key_env` when set and otherwise only `api_key_stored: true`, imports back unchanged. (A provider
holding both a stored key and a variable name, which only the admin can produce, exports as `api_key_env`
and so loses the stored key on re-import.)
"""

from routing.catalogue.documents import dump_catalogue_yaml, load_catalogue_yaml
from routing.catalogue.exporter import export_catalogue
from routing.catalogue.importer import ImportReport, SectionCounts, import_catalogue
from routing.catalogue.rotation import rotate_credentials
from routing.catalogue.schema import CatalogueError

__all__ = [
    "CatalogueError",
    "ImportReport",
    "SectionCounts",
    "dump_catalogue_yaml",
    "export_catalogue",
    "import_catalogue",
    "load_catalogue_yaml",
    "rotate_credentials",
]
