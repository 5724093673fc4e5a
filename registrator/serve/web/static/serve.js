// registrator serve: live updates without a page reload. The server says when the copy
// changed (server-sent events); the page then fetches its own content again, rendered and
// escaped by the server, and swaps it in. Nothing from elsewhere is loaded.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !window.EventSource) { return; }
  // What this page was rendered from; the stream's first line may already be newer (a
  // change between the page and the stream): then it is fetched again at once.
  var last = main.getAttribute("data-state");
  var busy = false;
  var again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = location.pathname + "?fragment=1";
    fetch(url, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) { main.innerHTML = html; ages(); })
      .catch(function () { /* the next event tries again */ })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  function ages() {
    var now = Date.now();
    var times = main.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var then = Date.parse(times[i].getAttribute("datetime"));
      if (isNaN(then) || !/^\d+[smhd]$/.test(times[i].textContent)) { continue; }
      var s = Math.max(0, Math.floor((now - then) / 1000));
      times[i].textContent = s >= 86400 ? Math.floor(s / 86400) + "d"
        : s >= 3600 ? Math.floor(s / 3600) + "h"
        : s >= 60 ? Math.floor(s / 60) + "m" : s + "s";
    }
  }

  function connect() {
    var events = new EventSource(main.getAttribute("data-events"));
    events.onopen = function () { live.className = "live on"; };
    events.onerror = function () {
      live.className = "live";
      // The browser retries a dropped stream by itself, but gives up on an answer that is
      // not a stream (a 429 when serve holds too many, a proxy's error page): try again.
      if (events.readyState === EventSource.CLOSED) { setTimeout(connect, 3000); }
    };
    events.onmessage = function (e) {
      if (e.data !== last) { refresh(); }
      last = e.data;
    };
  }

  connect();
  setInterval(ages, 5000);
})();
