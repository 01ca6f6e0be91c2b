// The web UI's only script, served from /static/app.js so the Content-Security-Policy
// can forbid inline scripts. Pages work without it; with it they confirm in a dialog,
// copy commands, and follow changes live.
(function () {
  'use strict';

  // Forms that destroy something ask first, in a dialog: <form data-confirm="Delete x?">.
  var pending = null;
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!form.dataset || !form.dataset.confirm) return;
    var dialog = document.getElementById('confirm-dialog');
    e.preventDefault();
    if (!dialog || !dialog.showModal) {
      if (confirm(form.dataset.confirm)) form.submit();
      return;
    }
    pending = form;
    document.getElementById('confirm-message').textContent = form.dataset.confirm;
    document.getElementById('confirm-ok').textContent = form.dataset.confirmButton || 'Confirm';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });

  document.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('button') : null;
    if (!t) return;
    if (t.id === 'confirm-ok' && pending) {
      var form = pending;
      pending = null;
      document.getElementById('confirm-dialog').close();
      form.submit();
    } else if (t.id === 'confirm-cancel') {
      pending = null;
      document.getElementById('confirm-dialog').close();
    } else if (t.dataset.copy !== undefined) {
      copy(t, t.dataset.copy);
    } else if (t.dataset.instructions) {
      showInstructions(t.dataset.instructions);
    } else if (t.id === 'connect-copy') {
      copy(t, document.getElementById('connect-command').textContent);
    } else if (t.id === 'connect-close') {
      document.getElementById('connect-dialog').close();
    }
  });

  function copy(button, text) {
    function done() {
      var was = button.textContent;
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = was; }, 1500);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  }

  // An external agent's command holds its token: fetched only when asked for.
  function showInstructions(url) {
    fetch(url, { credentials: 'same-origin' })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        var text = res.ok ? res.body.command : (res.body.message || 'could not fetch the command');
        document.getElementById('connect-command').textContent = text;
        document.getElementById('connect-dialog').showModal();
      });
  }

  // A live page: its stream says when what it shows changed; the page is fetched again
  // and its live region swapped in place (no reload).
  function live(region) {
    var version = region.dataset.version;
    var busy = false;
    function refresh(want) {
      if (busy) return;
      busy = true;
      fetch(location.href, { credentials: 'same-origin' })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById(region.id);
          var current = document.getElementById(region.id);
          if (fresh && current) {
            var open = [];
            current.querySelectorAll('details[open]').forEach(function (d) { open.push(d.parentNode.id); });
            current.replaceWith(fresh);
            fresh.querySelectorAll('details').forEach(function (d) {
              if (open.indexOf(d.parentNode.id) >= 0) d.open = true;
            });
            version = fresh.dataset.version;
          }
        })
        .finally(function () {
          busy = false;
          // Again only if a newer version was announced while this one loaded.
          if (latest !== version && latest !== want) refresh(latest);
        });
    }
    var latest = version;
    var events = null;
    function connect() {
      events = new EventSource(region.dataset.live);
      events.addEventListener('version', function (e) {
        latest = e.data;
        if (e.data !== version) refresh(e.data);
      });
      events.addEventListener('gone', function () { events.close(); location.href = '/'; });
      events.onerror = function () { events.close(); setTimeout(connect, 2000); };
    }
    connect();
    // A page left for another stays in the browser's back-forward cache: its stream
    // must not hold one of the few connections a browser opens to this server.
    window.addEventListener('pagehide', function () { if (events) events.close(); });
    window.addEventListener('pageshow', function (e) { if (e.persisted) connect(); });
  }

  // A running build's page follows its log: new lines arrive over SSE (the session
  // cookie authenticates it), and the finished build reloads so status, timings and
  // error are current.
  function followLog(log) {
    var after = Number(log.dataset.after);
    var events = null;
    window.addEventListener('pagehide', function () { if (events) events.close(); });
    window.addEventListener('pageshow', function (e) { if (e.persisted) connect(); });
    function connect() {
      events = new EventSource(log.dataset.stream + '?after=' + after);
      events.addEventListener('log', function (e) {
        var line = JSON.parse(e.data);
        if (line.id <= after) return;
        after = line.id;
        var div = document.createElement('div');
        div.className = 'line ' + line.level;
        var stage = document.createElement('span');
        stage.className = 'stage';
        stage.textContent = line.stage;
        div.appendChild(stage);
        // textContent: log text is never parsed as HTML.
        div.appendChild(document.createTextNode(line.text));
        log.appendChild(div);
      });
      events.addEventListener('end', function () { events.close(); location.reload(); });
      // The browser's own retry would start again from the first `after`: resume instead.
      events.onerror = function () { events.close(); setTimeout(connect, 1000); };
    }
    connect();
  }

  // A slider shows its value beside it.
  document.addEventListener('input', function (e) {
    var t = e.target;
    if (t.type === 'range') {
      var out = document.getElementById(t.id + '-value');
      if (out) out.textContent = t.value;
    }
  });

  // A select that changes what the page shows (the create form's preset) reloads it
  // through its button, so the page works the same without script.
  document.addEventListener('change', function (e) {
    var t = e.target;
    var button = t.dataset && t.dataset.reload && document.getElementById(t.dataset.reload);
    if (button) button.click();
  });

  document.addEventListener('DOMContentLoaded', function () {
    var log = document.querySelector('#log[data-stream]');
    if (log) followLog(log);
    var region = document.querySelector('[data-live]');
    if (region && region.dataset.live) live(region);
  });
})();
