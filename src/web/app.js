// The web UI's only script, served from /static/app.js so the Content-Security-Policy
// can forbid inline scripts.
(function () {
  // Forms that destroy something ask first: <form data-confirm="Delete x?">.
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (form.dataset && form.dataset.confirm && !confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  });

  // A running build's page follows its log: new lines arrive over SSE (the session
  // cookie authenticates it), and the finished build reloads so status, timings and
  // error are current.
  function followLog(log) {
    var after = Number(log.dataset.after);
    function connect() {
      var events = new EventSource(log.dataset.stream + '?after=' + after);
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

  document.addEventListener('DOMContentLoaded', function () {
    var log = document.querySelector('#log[data-stream]');
    if (log) followLog(log);
  });
})();
