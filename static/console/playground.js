// The playground: stream a task's answer into the chat as it arrives. Without this script the form posts to
// the page, which answers in one piece. The API key stays in this tab (sessionStorage) and travels only to
// the console's relay (same origin, with the CSRF token), which passes it on to the task's adapter.
"use strict";

(() => {
  const form = document.getElementById("playground-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const keyInput = document.getElementById("api-key");
  const chat = document.getElementById("chat");
  const errorBox = document.getElementById("chat-error");
  const send = document.getElementById("send");
  const message = document.getElementById("message");
  const historyField = document.getElementById("history");
  const newChat = document.getElementById("new-chat");
  const usageNote = document.getElementById("usage-note");
  const storageKey = "aicp.playground.apiKey";

  let history = [];
  try { history = JSON.parse(historyField.value || "[]"); } catch (_) { history = []; }
  newChat.hidden = history.length === 0;

  try {
    const saved = sessionStorage.getItem(storageKey);
    if (saved && !keyInput.value) keyInput.value = saved;
  } catch (_) { /* storage off: the key is typed each time */ }
  keyInput.addEventListener("input", () => {
    try { sessionStorage.setItem(storageKey, keyInput.value.trim()); } catch (_) { /* ignore */ }
  });

  class RelayError extends Error {}

  function bubble(role, text) {
    const empty = chat.querySelector(".chat-empty");
    if (empty) empty.remove();
    const div = document.createElement("div");
    div.className = `bubble ${role}`;
    div.textContent = text;
    chat.appendChild(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  // One server-sent event: the relay's own `error`, the adapter's `[DONE]`, or an OpenAI chunk.
  function handle(raw, on) {
    let event = "message";
    const data = [];
    for (const line of raw.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return false;
    const text = data.join("\n");
    if (event === "error") {
      let reason = text;
      try { reason = JSON.parse(text).message || text; } catch (_) { /* plain text */ }
      throw new RelayError(reason);
    }
    if (text === "[DONE]") return true;
    let chunk;
    try { chunk = JSON.parse(text); } catch (_) { return false; }
    if (chunk.error) throw new RelayError(chunk.error.message || "The task reported an error.");
    const choice = chunk.choices && chunk.choices[0];
    if (choice && choice.delta && choice.delta.content) on.delta(choice.delta.content);
    if (chunk.usage) on.usage(chunk.usage);
    return false;
  }

  async function stream(body, on) {
    const response = await fetch(form.dataset.streamUrl, {
      method: "POST", body, credentials: "same-origin", headers: { Accept: "text/event-stream" },
    });
    if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      throw new RelayError(`The console refused the message (${response.status}). Reload the page and try again.`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const raw = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (handle(raw, on)) { reader.cancel().catch(() => {}); return; }
      }
    }
    if (buffer.trim()) handle(buffer, on);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text) { message.focus(); return; }
    if (!keyInput.value.trim()) { showError("Paste a tenant API key first."); keyInput.focus(); return; }
    showError("");
    const body = new FormData(form);
    body.set("history", JSON.stringify(history));
    body.set("message", text);
    bubble("user", text);
    const answer = bubble("assistant", "");
    answer.classList.add("streaming");
    send.disabled = true;
    message.value = "";
    let content = "";
    try {
      await stream(body, {
        delta: (piece) => { content += piece; answer.textContent = content; answer.scrollIntoView({ block: "end" }); },
        usage: (usage) => { usageNote.textContent = `${usage.prompt_tokens} input · ${usage.completion_tokens} output tokens`; },
      });
      history.push({ role: "user", content: text }, { role: "assistant", content });
      historyField.value = JSON.stringify(history);
    } catch (error) {
      const reason = error instanceof RelayError ? error.message : `The console could not be reached: ${error.message}`;
      answer.classList.add("failed");
      answer.textContent = content ? `${content}\n\n⚠ ${reason}` : `⚠ ${reason}`;
      if (!content) message.value = text; // nothing came back: the message waits to be sent again
    } finally {
      answer.classList.remove("streaming");
      send.disabled = false;
      newChat.hidden = history.length === 0;
    }
  });

  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  newChat.addEventListener("click", () => {
    history = [];
    historyField.value = "[]";
    chat.replaceChildren();
    usageNote.textContent = "";
    showError("");
    newChat.hidden = true;
    message.focus();
  });
})();
