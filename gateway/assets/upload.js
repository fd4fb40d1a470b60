// Kluis: several files at once, with a progress bar and a result per file.
// Without this script the form still works, one file per upload. Each file
// is sent as its own request (the server takes one file per upload); its
// row shows sending (with progress), processing (sent, waiting for the
// server), then the server's answer: accepted, or refused and why.
"use strict";
(function () {
  var form = document.getElementById("upload");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var input = document.getElementById("files");
  var list = document.getElementById("upload-results");
  var drop = document.getElementById("drop");
  var summary = document.getElementById("upload-summary");
  input.multiple = true;

  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; }
  });

  function row(name) {
    var li = document.createElement("li");
    li.className = "busy";
    var file = document.createElement("span");
    file.className = "file";
    file.textContent = name;
    var text = document.createElement("span");
    text.textContent = ": " + form.dataset.sending;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", name);
    li.appendChild(file);
    li.appendChild(text);
    li.appendChild(bar);
    list.appendChild(li);
    return { li: li, text: text, bar: bar };
  }

  function finish(r, ok, message) {
    r.li.className = ok ? "ok" : "refused";
    r.text.textContent = ": " + message;
    if (r.bar.parentNode) { r.bar.parentNode.removeChild(r.bar); }
  }

  function send(file, type) {
    return new Promise(function (resolve) {
      var r = row(file.name);
      var data = new FormData();
      data.append("type", type);
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Kluis-Upload", "1");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { r.bar.value = Math.round((e.loaded / e.total) * 100); }
      });
      xhr.upload.addEventListener("load", function () {
        r.bar.removeAttribute("value");
        r.text.textContent = ": " + form.dataset.processing;
      });
      xhr.addEventListener("load", function () {
        var answer = null;
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
        if (answer && typeof answer.message === "string") {
          finish(r, !!answer.ok, answer.message);
          resolve(!!answer.ok);
        } else {
          finish(r, false, form.dataset.refused + " HTTP " + xhr.status);
          resolve(false);
        }
      });
      xhr.addEventListener("error", function () { finish(r, false, form.dataset.refused + " —"); resolve(false); });
      xhr.addEventListener("abort", function () { finish(r, false, form.dataset.refused + " —"); resolve(false); });
      xhr.send(data);
    });
  }

  function refreshDocuments() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (resp) { return resp.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("section[aria-labelledby='docs-h']");
        var old = document.querySelector("section[aria-labelledby='docs-h']");
        if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* the list shows the new files on the next visit */ });
  }

  form.addEventListener("submit", function (e) {
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.length) { return; }
    e.preventDefault();
    var type = document.getElementById("type").value;
    var button = form.querySelector("button[type='submit']");
    button.disabled = true;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    summary.textContent = "";
    var accepted = 0;
    var chain = Promise.resolve();
    files.forEach(function (f) {
      chain = chain.then(function () { return send(f, type); }).then(function (ok) { if (ok) { accepted += 1; } });
    });
    chain.then(function () {
      summary.textContent = form.dataset.summary.replace("{accepted}", String(accepted)).replace("{total}", String(files.length));
      form.reset();
      input.multiple = true;
      button.disabled = false;
      return accepted ? refreshDocuments() : null;
    });
  });
})();
