// Live progress bars on /admin/digests: while a digest on the page is
// sending, poll the small JSON endpoint once a second and update its row.
// Served by the app itself, since the CSP allows only 'self' scripts.
(function () {
  "use strict";
  var table = document.querySelector("table[data-progress-url]");
  if (!table) { return; }
  var url = table.getAttribute("data-progress-url");

  function sending() {
    return table.querySelector('tr[data-status="sending"]') !== null;
  }

  function set(row, name, text) {
    var el = row.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = text; }
  }

  function update(items) {
    items.forEach(function (d) {
      var row = table.querySelector('tr[data-digest-id="' + d.id + '"]');
      if (!row) { return; }
      row.setAttribute("data-status", d.status);
      var bar = row.querySelector("progress");
      if (bar) { bar.value = d.percent; bar.textContent = d.percent + "%"; }
      set(row, "percent", d.percent + "%");
      set(row, "sent", d.sent);
      set(row, "failed", d.failed);
      set(row, "total", d.total);
      var status = row.querySelector('[data-field="status"]');
      if (status) {
        status.textContent = d.status;
        status.className = "status status-" + d.status;
      }
    });
  }

  function poll() {
    if (!sending()) { return; }
    if (document.hidden) { setTimeout(poll, 1000); return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) {
        if (res.status === 401) { window.location.href = table.getAttribute("data-login-url"); return null; }
        return res.ok ? res.json() : null;
      })
      .then(function (body) {
        if (body && body.items) { update(body.items); }
      })
      .catch(function () { /* network blip: try again next tick */ })
      .then(function () { setTimeout(poll, 1000); });
  }

  setTimeout(poll, 500);
}());
