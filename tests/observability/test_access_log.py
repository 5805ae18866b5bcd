import io
import json
import logging
import sys

import openai
import pytest

from routing.observability import logs
from routing.observability.logs import BackgroundStreamHandler, JsonFormatter, access_log
from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["only handler", "beside another handler"])
def access_lines(request, gateway):
    """The access log as JSON lines, through the background handler production uses: alone (events are
    queued directly) or beside another handler (LogRecords go through logging as usual)."""
    stream = io.StringIO()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    saved_handlers, saved_level = access_log.handlers[:], access_log.level
    access_log.handlers = [handler] if request.param == "only handler" else [handler, logging.NullHandler()]
    access_log.setLevel(logging.INFO)
    logs.choose_access_path()
    assert (logs._direct_handler is handler) == (request.param == "only handler")

    def read() -> list[dict]:
        handler.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    access_log.handlers, access_log.level = saved_handlers, saved_level
    logs.choose_access_path()


def test_each_request_leaves_one_json_access_line_without_secrets_or_prompts(gateway, api_key, access_lines):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)
    ok = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my secret plan 42"}]
    )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="bad-request", messages=[{"role": "user", "content": "Hi"}])
    wait_for_usage(2)

    lines = access_lines()

    assert [line["status"] for line in lines] == [200, 400]
    first = lines[0]
    assert first["logger"] == "tollway.access" and first["level"] == "INFO"
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["alias"], first["deployment"], first["attempts"]) == ("gpt-4o-mini", "main-gpt-4o-mini", 1)
    assert first["latency_ms"] >= first["ttfb_ms"] > 0
    assert isinstance(first["tenant_id"], int) and isinstance(first["team_id"], int)
    assert api_key.startswith(first["key_prefix"]) and len(first["key_prefix"]) < len(api_key) // 2
    assert lines[1]["error_type"]
    text = json.dumps(lines)
    assert api_key not in text and api_key[14:] not in text
    assert "secret plan" not in text and "Hello from" not in text


def test_json_lines_carry_extras_and_the_traceback_of_ordinary_records():
    try:
        raise ValueError("bad value")
    except ValueError:
        record = logging.getLogger("tollway.test").makeRecord(
            "tollway.test", logging.ERROR, __file__, 1, "flush failed for %s", ("batch-7",), sys.exc_info()
        )
    record.request_id = "req_1"

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "flush failed for batch-7"
    assert entry["request_id"] == "req_1" and entry["level"] == "ERROR"
    assert "ValueError: bad value" in entry["exc_info"]
    assert entry["ts"].endswith("+00:00")
