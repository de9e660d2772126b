// Tidings' feedback widget: fills in the counts of every
// <form class="tidings-feedback"> on the page and sends its votes without
// leaving the page. Without this script the same form still works: it
// posts and comes back to the article (303).
(function () {
  "use strict";

  function show(form, counts) {
    ["yes", "no"].forEach(function (vote) {
      var count = form.querySelector('[data-tidings-count="' + vote + '"]');
      if (count) count.textContent = "(" + counts[vote] + ")";
      var button = form.querySelector('button[value="' + vote + '"]');
      if (button) button.setAttribute("aria-pressed", String(counts.mine === vote));
    });
    form.setAttribute("data-tidings-ready", "");
  }

  function ask(form, request) {
    request.credentials = "include";
    request.headers = request.headers || {};
    request.headers.Accept = "application/json";
    var url = request.url;
    delete request.url;
    return fetch(url, request).then(function (res) {
      if (!res.ok) throw new Error("feedback: " + res.status);
      return res.json();
    }).then(function (counts) { show(form, counts); });
  }

  function setUp(form) {
    var action = form.getAttribute("action");
    var article = form.elements.url ? form.elements.url.value : "";
    if (!action || !article) return;
    ask(form, { url: action + "?url=" + encodeURIComponent(article) }).catch(function () {});
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (!button || !button.value) return;
      event.preventDefault();
      ask(form, {
        url: action,
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ url: article, vote: button.value })
      }).catch(function () {
        // The script's way failed: fall back to the plain form post.
        var vote = document.createElement("input");
        vote.type = "hidden";
        vote.name = "vote";
        vote.value = button.value;
        form.appendChild(vote);
        HTMLFormElement.prototype.submit.call(form);
      });
    });
  }

  var forms = document.querySelectorAll("form.tidings-feedback");
  for (var i = 0; i < forms.length; i++) setUp(forms[i]);
})();
