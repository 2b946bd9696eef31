// Sluice console: the one behaviour htmx does not cover. No inline script
// anywhere; this file is served from the console's own origin.

// Publishing a dataset version: the file goes as the request body (what
// the API takes) with a progress bar; the session's CSRF token goes in a
// header. On success the dataset page reloads with the new version.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.matches("form[data-upload]")) return;
  event.preventDefault();
  var file = form.querySelector("input[type=file]").files[0];
  if (!file) return;
  var bar = form.querySelector("progress");
  var status = form.querySelector("[role=status]");
  var button = form.querySelector("button");
  var xhr = new XMLHttpRequest();
  xhr.open("POST", form.getAttribute("action"));
  xhr.setRequestHeader("X-CSRF-Token", form.getAttribute("data-csrf"));
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = function (e) {
    if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
  };
  xhr.onload = function () {
    if (xhr.status === 201) {
      status.textContent = xhr.responseText;
      window.location.assign(xhr.getResponseHeader("Location"));
    } else {
      status.textContent = "Not published: " + xhr.responseText;
      button.disabled = false;
    }
  };
  xhr.onerror = function () {
    status.textContent = "The upload was interrupted; nothing was published.";
    button.disabled = false;
  };
  bar.value = 0;
  button.disabled = true;
  status.textContent = "Uploading " + file.name + " (checked and pseudonymised on arrival)…";
  xhr.send(file);
});
