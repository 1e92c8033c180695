// ward: passkeys and security keys. Reads the options ward's page carries, asks the
// browser's authenticator when the person presses the button, and sends its answer with
// the page's form. Served as /.ward/passkey.js: ward's pages allow no inline script.
(function () {
  "use strict";
  var form = document.getElementById("passkey-form");
  var button = document.getElementById("passkey-go");
  var status = document.getElementById("passkey-status");
  if (!form || !button) {
    return;
  }
  // base64url text <-> bytes, as WebAuthn's options and answers need.
  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }
  function text(buffer) {
    var view = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < view.length; i++) {
      raw += String.fromCharCode(view[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function say(message) {
    status.textContent = message;
  }
  if (!window.PublicKeyCredential || !navigator.credentials) {
    say("This browser cannot use passkeys. Use another sign-in method, or an up-to-date browser.");
    button.disabled = true;
    return;
  }
  var create = form.getAttribute("data-ceremony") === "create";
  button.addEventListener("click", function () {
    var options;
    try {
      options = JSON.parse(form.getAttribute("data-options")).publicKey;
    } catch (e) {
      say("This page is damaged. Reload it and try again.");
      return;
    }
    options.challenge = bytes(options.challenge);
    var listed = create ? options.excludeCredentials : options.allowCredentials;
    (listed || []).forEach(function (c) {
      c.id = bytes(c.id);
    });
    if (create) {
      options.user.id = bytes(options.user.id);
    }
    button.disabled = true;
    say("Waiting for your passkey or security key…");
    var asked = create
      ? navigator.credentials.create({ publicKey: options })
      : navigator.credentials.get({ publicKey: options });
    asked.then(function (credential) {
      var r = credential.response;
      var answer = {
        id: credential.id,
        rawId: text(credential.rawId),
        type: credential.type,
        extensions: {},
        response: create
          ? {
              attestationObject: text(r.attestationObject),
              clientDataJSON: text(r.clientDataJSON),
              transports: r.getTransports ? r.getTransports() : undefined,
            }
          : {
              authenticatorData: text(r.authenticatorData),
              clientDataJSON: text(r.clientDataJSON),
              signature: text(r.signature),
              userHandle: r.userHandle ? text(r.userHandle) : null,
            },
      };
      form.elements.credential.value = JSON.stringify(answer);
      form.submit();
    }).catch(function () {
      button.disabled = false;
      say("No passkey was used (it was cancelled, timed out, or is not one of yours here). Try again, or use another way.");
    });
  });
})();
