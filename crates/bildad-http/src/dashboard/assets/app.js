// Bildad dashboard: refreshes the parts of the page marked `data-live` every few
// seconds, without a reload. The server answers the same URL with only the page body
// when asked with `X-Bildad-Live: 1`. No inline script: the page's CSP forbids it.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;
  var status = null;
  var busy = false;

  function setStatus(text, cls) {
    if (!status) status = document.getElementById("live-status");
    if (!status) return;
    status.textContent = text;
    status.className = "live " + (cls || "");
  }

  function refresh() {
    if (busy || document.hidden) return;
    var live = document.querySelectorAll("[data-live][id]");
    if (live.length === 0) return;
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Bildad-Live": "1" },
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual"
    })
      .then(function (res) {
        if (res.type === "opaqueredirect" || res.status === 401) {
          setStatus("signed out", "off");
          return null;
        }
        if (!res.ok) {
          setStatus("offline", "off");
          return null;
        }
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          // Leave alone a part the user is typing in.
          if (fresh && !old.contains(document.activeElement)) {
            old.replaceWith(document.importNode(fresh, true));
          }
        });
        setStatus("live", "");
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {
        setStatus("offline", "off");
      })
      .finally(function () {
        busy = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setInterval(refresh, INTERVAL_MS);
  });
})();
