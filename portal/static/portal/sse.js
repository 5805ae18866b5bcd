// Reads a text/event-stream response event by event (the playground and the prompt test runs stream
// /v1/chat/completions with it). onEvent(rawEvent) returns false to stop reading and cancel the stream.
// readChat() reads chat-completion chunks into `state` ({started, firstTokenMs, text, usage, error}) and calls
// onText(state) after each piece of text; errorText(body, fallback) words an error chunk.
window.TollwaySSE = {
  read: async function (response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var result = await reader.read();
      if (result.done) break;
      buffer += decoder.decode(result.value, { stream: true }).replace(/\r\n/g, "\n");
      var boundary;
      while ((boundary = buffer.indexOf("\n\n")) !== -1) {
        var rawEvent = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        if (!onEvent(rawEvent)) { reader.cancel().catch(function () {}); return; }
      }
    }
    if (buffer.trim()) onEvent(buffer);
  },

  chatChunk: function (rawEvent, state, errorText, onText) {
    // One SSE event: its data lines, joined. Returns false on [DONE] or an error.
    var data = rawEvent.split("\n")
      .filter(function (line) { return line.indexOf("data:") === 0; })
      .map(function (line) { return line.slice(5).replace(/^ /, ""); })
      .join("\n");
    if (!data) return true;
    if (data === "[DONE]") return false;
    var chunk;
    try { chunk = JSON.parse(data); } catch (e) { return true; }
    if (chunk.error) { state.error = errorText(chunk, "an error"); return false; }
    if (chunk.usage) state.usage = chunk.usage;
    var choice = chunk.choices && chunk.choices[0];
    var delta = choice && choice.delta && choice.delta.content;
    if (delta) {
      if (state.firstTokenMs === null) state.firstTokenMs = performance.now() - state.started;
      state.text += delta;
      onText(state);
    }
    return true;
  },

  readChat: function (response, state, errorText, onText) {
    var sse = this;
    return sse.read(response, function (rawEvent) { return sse.chatChunk(rawEvent, state, errorText, onText); });
  },
};
