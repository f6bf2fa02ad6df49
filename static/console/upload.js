// Model upload with a progress bar. Without this script the form posts as a plain form and works the same.
//
// The form is sent with XMLHttpRequest (fetch reports no upload progress) as the API's upload expects it:
// every file as a `files` part with its relative path in `paths`, in the same order; a folder pick keeps its
// sub-folders (the picked folder itself is the model folder). The server answers 201 with {"url": <the
// model's page>} to follow, or the page again with the refusal on its field, whose form replaces this one.
"use strict";

(() => {
  const FORM_ID = "upload-form";

  function humanBytes(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  // A folder pick names files "picked-folder/sub/file"; the model folder is the picked folder.
  function pathInFolder(file) {
    const relative = file.webkitRelativePath || file.name;
    const slash = relative.indexOf("/");
    return slash >= 0 ? relative.slice(slash + 1) : relative;
  }

  function uploadBody(form) {
    const body = new FormData(form);
    for (const name of ["files", "folder", "paths"]) body.delete(name);
    const folder = Array.from(form.elements.folder ? form.elements.folder.files : []);
    const files = Array.from(form.elements.files ? form.elements.files.files : []);
    const fromFolder = folder.length > 0 && files.length === 0;
    for (const file of fromFolder ? folder : files) {
      body.append("files", file, file.name);
      body.append("paths", fromFolder ? pathInFolder(file) : file.name);
    }
    if (!fromFolder) for (const file of folder) body.append("folder", file, file.name); // the form refuses both
    return body;
  }

  function showProgress(form, loaded, total, text) {
    const box = form.querySelector("#upload-progress");
    const bar = form.querySelector("#upload-progress-bar");
    const label = form.querySelector("#upload-progress-text");
    if (!box) return;
    box.hidden = false;
    const percent = total ? Math.round((100 * loaded) / total) : 0;
    bar.style.width = `${percent}%`;
    label.textContent = text || `${humanBytes(loaded)} of ${humanBytes(total)} sent (${percent}%)`;
  }

  function replaceForm(form, html) {
    const page = new DOMParser().parseFromString(html, "text/html");
    const fresh = page.getElementById(FORM_ID);
    if (!fresh) return false;
    form.replaceWith(document.adoptNode(fresh));
    // Keep what was picked, so that fixing a name does not mean picking the files again.
    for (const name of ["files", "folder", "archive"]) {
      const before = form.elements[name];
      const after = fresh.elements[name];
      if (before && after && before.files && before.files.length) {
        try { after.files = before.files; } catch (_) { /* an older browser: pick again */ }
      }
    }
    const firstError = document.querySelector(`#${FORM_ID} .error`);
    if (firstError) firstError.scrollIntoView({ block: "center" });
    return true;
  }

  function fail(form, message) {
    showProgress(form, 0, 0, message);
    const submit = form.querySelector("#upload-submit");
    if (submit) submit.disabled = false;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id !== FORM_ID || !window.FormData || !window.XMLHttpRequest) return;
    event.preventDefault();
    const submit = form.querySelector("#upload-submit");
    if (submit) submit.disabled = true;

    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    request.upload.onprogress = (progress) => {
      if (progress.lengthComputable) showProgress(form, progress.loaded, progress.total);
    };
    request.upload.onload = () => showProgress(form, 1, 1, "Sent. Checking and inspecting the model…");
    request.onload = () => {
      const type = request.getResponseHeader("Content-Type") || "";
      if (request.status === 201 && type.includes("application/json")) {
        window.location.assign(JSON.parse(request.responseText).url);
      } else if (!(type.includes("text/html") && replaceForm(form, request.responseText))) {
        fail(form, `The upload was refused (HTTP ${request.status}).`);
      }
    };
    request.onerror = () => fail(form, "The upload stopped: the connection was lost. Try again.");
    request.send(uploadBody(form));
  });
})();
