"""The pure Responses <-> chat translation (routing/proxy/responses_api.py, responses_stream.py)."""

import orjson
import pytest

from core.values import TokenUsage
from routing.proxy import responses_api
from routing.proxy.responses_api import InvalidResponsesRequest, input_items, to_chat_request
from routing.proxy.responses_stream import ResponsesStreamEncoder


def chat_of(body: dict, history=()) -> dict:
    return to_chat_request(body, items=input_items(body), history=list(history))


def test_items_become_chat_messages_with_tool_calls_joined_to_their_assistant_turn():
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
            {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": '{"q":1}'},
            {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": '{"q":2}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "a dog"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    }
    messages = chat_of(body)["messages"]

    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }
    assert messages[2]["role"] == "assistant" and messages[2]["content"] == "Let me check."
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["call_1", "call_2"]
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": "a dog"},
    ]


def test_settings_map_to_their_chat_counterparts():
    body = {
        "model": "m",
        "input": "Hi",
        "max_output_tokens": 50,
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "u-1",
        "metadata": {"k": "v"},
        "parallel_tool_calls": False,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "Out", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "low"},
        "stream": True,
    }
    chat = chat_of(body)

    assert chat["messages"] == [{"role": "user", "content": "Hi"}]
    assert (chat["max_completion_tokens"], chat["temperature"], chat["top_p"], chat["user"]) == (50, 0.3, 0.9, "u-1")
    assert "metadata" not in chat  # echoed on the response, not sent: chat upstreams refuse it without store
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Out", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["reasoning_effort"] == "low" and chat["stream"] is True


def test_history_comes_before_the_new_input_and_after_the_new_instructions():
    history = [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Answer"}]
    chat = chat_of({"model": "m", "instructions": "New rules.", "input": "Now"}, history)

    assert [m["content"] for m in chat["messages"]] == ["New rules.", "Earlier", "Answer", "Now"]


@pytest.mark.parametrize("tool", ["web_search", "web_search_preview", "file_search", "code_interpreter", "mcp"])
def test_built_in_tools_are_refused(tool):
    with pytest.raises(InvalidResponsesRequest) as refused:
        chat_of({"model": "m", "input": "Hi", "tools": [{"type": tool}]})
    assert refused.value.param == "tools[0]" and refused.value.code == "unsupported_tool"
    assert tool in refused.value.message


def test_a_cut_completion_is_an_incomplete_response_and_usage_is_exact():
    completion = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hel"}, "finish_reason": "length"}],
    }
    usage = TokenUsage(prompt_tokens=10, completion_tokens=3, cached_tokens=4)
    response = responses_api.to_response(
        {"model": "alias", "input": "Hi"}, completion, response_id="resp_1", model="up", usage=usage
    )

    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 13,
    }


def decode(events: list[bytes]) -> list[dict]:
    return [orjson.loads(e.split(b"\ndata: ", 1)[1]) for e in events]


def test_the_encoder_numbers_events_and_closes_items_in_order():
    encoder = ResponsesStreamEncoder(body={"model": "m", "input": "Hi"}, response_id="resp_1", model="up")
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Checking."}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "w", "arguments": ""}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"c":1}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    events = decode([e for c in chunks for e in encoder.feed(c)] + encoder.finish())

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"c":1}' and final["output"][1]["call_id"] == "call_a"
    assert final["usage"]["total_tokens"] == 7
    assert encoder.terminal_event is not None and encoder.final_response == final


def test_an_upstream_failure_mid_stream_is_response_failed():
    encoder = ResponsesStreamEncoder(body={"model": "m", "input": "Hi"}, response_id="resp_1", model="up")
    events = decode(encoder.feed({"choices": [{"index": 0, "delta": {"content": "Hal"}}]}) + [encoder.error("boom")])

    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"] == "boom"
    assert encoder.feed({"choices": []}) == [] and encoder.finish() == []
