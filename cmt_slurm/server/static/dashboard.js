// Live dashboard: server-sent events from /api/v1/events/stream.
//  "progress" messages move the progress bars in place; "event" messages (state changes) re-fetch the
//  server-rendered panels, at most once a second. No framework, no build step.
(function () {
  "use strict";
  var script = document.currentScript;
  var streamUrl = script.getAttribute("data-stream-url");
  var panels = document.getElementById("panels");
  var live = document.getElementById("live");
  var refreshPending = false;

  function refresh() {
    if (refreshPending) { return; }
    refreshPending = true;
    setTimeout(function () {
      fetch(panels.getAttribute("data-panels-url"), { headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { panels.innerHTML = html; })
        .catch(function () { /* keep the old panels; the next event retries */ })
        .then(function () { refreshPending = false; });
    }, 1000);
  }

  function progress(list) {
    var missing = false;
    list.forEach(function (d) {
      var el = panels.querySelector('[data-deployment="' + d.id + '"]');
      if (!el) { missing = true; return; }
      var bar = el.querySelector("progress");
      if (d.total_bytes) { bar.max = d.total_bytes; }
      bar.value = d.progress_bytes || 0;
      el.querySelector(".stage").textContent = "#" + d.id + " " + d.stage;
      el.querySelector(".pct").textContent = d.percent || "";
    });
    if (missing) { refresh(); }
  }

  function connect() {
    var es = new EventSource(streamUrl);
    es.onopen = function () { live.textContent = "live"; live.className = "live on"; };
    es.onerror = function () { live.textContent = "reconnecting"; live.className = "live off"; };
    es.addEventListener("event", function () { refresh(); });
    es.addEventListener("progress", function (m) { progress(JSON.parse(m.data)); });
  }
  connect();
})();
