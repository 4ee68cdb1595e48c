// Progressive enhancement only: every page works without JavaScript.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain-http fallback (development): select a temporary field and copy it.
  return new Promise(function (resolve, reject) {
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "offscreen";
    document.body.appendChild(field);
    field.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(field);
    if (ok) { resolve(); } else { reject(new Error("copy refused")); }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    // The secret's box, or the "Try it" command's section on the same page.
    var status = button.closest(".secret-box, .try-it").querySelector(".copy-status");
    button.addEventListener("click", function () {
      copyText(input.value).then(function () {
        status.textContent = "Copied to the clipboard.";
        button.textContent = "Copied";
      }, function () {
        input.select();
        status.textContent = "Copying failed: the key is selected, press Ctrl+C (or ⌘C).";
      });
    });
  });
  document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });
});
