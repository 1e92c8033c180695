// ward: warns a minute before idle logoff, then clears the screen so patient
// data does not stay on an unattended computer. Served as /.ward/idle.js.
(function () {
  "use strict";
  if (window.__wardIdle) { return; }
  window.__wardIdle = true;
  // A token that can only keep this session alive; it cannot post any form.
  var keepalive = "";
  var deadline = null;
  var banner = null;

  function signedOut(reason) {
    // replace(): the page with patient data is not left in the back history.
    window.location.replace("/.ward/logged-out?reason=" + encodeURIComponent(reason || "idle"));
  }

  function showBanner(seconds) {
    if (!banner) {
      banner = document.createElement("div");
      banner.setAttribute("role", "alertdialog");
      banner.setAttribute("aria-live", "assertive");
      banner.id = "ward-idle-warning";
      banner.style.cssText = "position:fixed;left:0;right:0;top:0;z-index:2147483647;padding:1em;" +
        "background:#7a1f1f;color:#fff;font:16px/1.4 system-ui,sans-serif;text-align:center";
      var text = document.createElement("span");
      text.id = "ward-idle-text";
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = "Stay signed in";
      button.style.cssText = "margin-left:1em;font-size:16px";
      button.addEventListener("click", stay);
      banner.appendChild(text);
      banner.appendChild(button);
      document.body.appendChild(banner);
      button.focus();
    }
    document.getElementById("ward-idle-text").textContent =
      "You will be signed out in " + Math.max(0, Math.round(seconds)) + " seconds because this page is not being used.";
  }

  function hideBanner() {
    if (banner) { banner.remove(); banner = null; }
  }

  function stay() {
    fetch("/.ward/keepalive", { method: "POST", credentials: "same-origin", headers: { "X-Ward-Keepalive": keepalive } })
      .then(function (r) { if (r.status === 401) { signedOut("idle"); } else { hideBanner(); check(); } })
      .catch(function () {});
  }

  function check() {
    fetch("/.ward/session", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (!s.signed_in) { signedOut(s.reason); return; }
        keepalive = s.keepalive;
        deadline = Date.now() + s.remaining * 1000;
        if (s.remaining > 60) { hideBanner(); }
      })
      .catch(function () {});
  }

  function tick() {
    if (deadline === null) { return; }
    var left = (deadline - Date.now()) / 1000;
    if (left <= 0) {
      // Ask the server before leaving: another tab may have kept the session alive.
      deadline = null;
      check();
      setTimeout(function () { if (deadline !== null && deadline > Date.now()) { return; } signedOut("idle"); }, 1500);
    } else if (left <= 60) {
      showBanner(left);
    }
  }

  check();
  setInterval(check, 30000);
  setInterval(tick, 1000);
})();
