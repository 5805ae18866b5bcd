// Reads a text/event-stream response event by event (the playground and the prompt test runs stream
// /v1/chat/completions with it). onEvent(rawEvent) returns false to stop reading and cancel the stream.
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
};
