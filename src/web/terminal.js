// The web terminal: xterm.js on a reconnecting PTY in the workspace's agent. The
// terminal's id lives in the page's URL (?reconnect=…), so a reload reattaches to the
// same shell; a lost connection is retried with backoff.
(function () {
  var el = document.getElementById('terminal');
  var state = document.getElementById('state');
  var params = new URLSearchParams(location.search);
  var id = params.get('reconnect');
  if (!id || !/^[A-Za-z0-9-]{1,64}$/.test(id)) {
    id = crypto.randomUUID();
    params.set('reconnect', id);
    history.replaceState(null, '', location.pathname + '?' + params.toString());
  }
  var term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(el);
  fit.fit();
  window.hangarTerminal = term; // for tests and the console
  var socket = null;
  var delay = 250;
  var ended = false;

  function send(msg) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
  }

  function connect() {
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var url = scheme + location.host + el.dataset.socket + '?reconnect=' + encodeURIComponent(id) +
      '&height=' + term.rows + '&width=' + term.cols;
    // A command app's terminal runs the app's command (the server looks it up by slug).
    if (params.get('app')) url += '&app=' + encodeURIComponent(params.get('app'));
    socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    socket.onopen = function () {
      delay = 250;
      state.textContent = 'connected';
      send({ height: term.rows, width: term.cols });
    };
    socket.onmessage = function (e) {
      if (typeof e.data !== 'string') { term.write(new Uint8Array(e.data)); return; }
      var msg = {};
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.ended) {
        ended = true;
        state.textContent = msg.ended + ': reload the page for a new one';
        term.write('\r\n[' + msg.ended + ']\r\n');
      }
    };
    socket.onclose = function () {
      if (ended) return;
      state.textContent = 'disconnected: reconnecting…';
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  }

  term.onData(function (data) { send({ data: data }); });
  term.onResize(function (size) { send({ height: size.rows, width: size.cols }); });
  window.addEventListener('resize', function () { fit.fit(); });
  connect();
  term.focus();
})();
