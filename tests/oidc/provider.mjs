// A real OpenID provider for ward's SSO tests: the certified `oidc-provider`
// package (pinned in package.json), on loopback, HTTPS (or plain HTTP), configured from
// the environment. Test use only: it accepts any password.
//
// Start:  node tests/oidc/provider.mjs   (after `npm ci --prefix tests/oidc`)
//
// Environment:
//   PORT      port on 127.0.0.1; 0 (the default) picks a free one. Once ready it
//             prints `listening on SCHEME://127.0.0.1:PORT` on stdout.
//   TLS_CERT, TLS_KEY  PEM files: serve HTTPS with them (the tests always do, as
//             providers are HTTPS in production); without them, plain HTTP.
//   ISSUER    the issuer URL; default SCHEME://127.0.0.1:PORT (no trailing slash).
//   CLIENTS   JSON array of oidc-provider client metadata, e.g.
//             [{"client_id":"ward","client_secret":"s3cret",
//               "redirect_uris":["https://ehr.localhost:8443/.ward/callback"],
//               "post_logout_redirect_uris":["https://ehr.localhost:8443/"]}]
//   ACCOUNTS  JSON object: account id -> claims, e.g.
//             {"alice":{"email":"alice@example.org","email_verified":true,
//                       "name":"Alice","groups":["clinicians"],
//                       "amr":["pwd","otp"],"acr":"urn:example:mfa"}}
//             The account id is the `sub`. `amr` and `acr` are not claims of the
//             account but of the sign-in: they are handed to oidc-provider as the
//             result of the login interaction and so land in the ID token (leave
//             them out and the ID token has no amr/acr).
//             Scopes: openid (sub), email (email, email_verified), profile (name,
//             preferred_username, given_name, family_name), groups (groups).
//   CLAIMS_IN_ID_TOKEN  "1" (default): the claims of the requested scopes are in
//             the ID token (as Entra ID and Keycloak do). "0": oidc-provider's
//             conform mode, where the ID token of a code flow carries only sub,
//             amr, acr and the like, and the rest comes from the userinfo endpoint.
//   TOKEN_AUTH_AS  JSON object {"client-a":"client-b"}: a client that
//             authenticates at the token endpoint as client-a (HTTP Basic) is
//             treated as client-b (its Authorization header is replaced by
//             client-b's credentials). See "A token for another audience" below.
//
// Signing in, step by step (what tests/common/oidc.rs does),
// keeping every Set-Cookie of this server and sending all of them back:
//   1. GET the authorization URL (/auth?client_id=…&redirect_uri=…&response_type=code
//      &scope=openid …&state=…&nonce=…&code_challenge=…&code_challenge_method=S256)
//      -> 303 to /interaction/UID
//   2. GET /interaction/UID -> 200, an HTML form (prompt "login")
//   3. POST /interaction/UID/login with form fields login=ACCOUNT_ID&password=anything
//      -> 303 to /auth/UID (resume) -> GET it
//   4. If that redirects to /interaction/UID2 (prompt "consent"): GET it (200, a form),
//      then POST /interaction/UID2/confirm (empty body) -> 303 to /auth/UID2 -> GET it
//   5. The provider answers 303 to redirect_uri?code=…&state=…&iss=… : the
//      redirect back to the relying party (do not follow it; hand its query over).
//   Instead of 3 or 4, POST /interaction/UID/abort denies the sign-in: the
//   provider then redirects to redirect_uri?error=access_denied&state=…
//
// Test controls (loopback only):
//   POST /__test/rotate-keys  a new RSA signing key with a new kid signs from now on;
//             the JWKS publishes the new key and the previous one (as a real
//             rotation does). Answers {"kid": NEW_KID}. Sessions, codes and
//             grants survive (oidc-provider's memory store is process-wide).
//   GET  /__test/kid          {"kid": CURRENT_SIGNING_KID}
//
// A token for another audience: register two clients at this provider, the
// other app ("other") and the client name ward is configured with ("ward-aud"
// below), both with ward's redirect URI, and set TOKEN_AUTH_AS={"ward-aud":"other"}.
// The test takes ward's authorization URL, changes client_id=ward-aud to
// client_id=other (so the person signs in to the other app, with ward's state,
// nonce and PKCE challenge) and hands the code to ward. ward redeems it with its
// own credentials, which this server treats as "other"'s, so oidc-provider
// issues a genuine ID token — its own signature, issuer, ward's nonce — whose
// aud is "other". ward must refuse it for the audience alone.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

import Provider from 'oidc-provider';

const json = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`${name} is not valid JSON: ${err.message}`);
    process.exit(2);
  }
};

const CLIENTS = json('CLIENTS', []);
const ACCOUNTS = json('ACCOUNTS', {});
const TOKEN_AUTH_AS = json('TOKEN_AUTH_AS', {});
const CLAIMS_IN_ID_TOKEN = (process.env.CLAIMS_IN_ID_TOKEN ?? '1') !== '0';
const PORT = Number(process.env.PORT ?? '0');
// Cookies are signed with these; they stay the same across key rotations.
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

let keyCounter = 0;
function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `test-key-${keyCounter}-${crypto.randomBytes(4).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
}

// The signing key first, then the one before it (still published).
let signingKeys = [newSigningKey()];

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function findAccount(ctx, id) {
  if (!Object.hasOwn(ACCOUNTS, id)) return undefined;
  return {
    accountId: id,
    async claims() {
      const { amr, acr, ...claims } = ACCOUNTS[id];
      return { ...claims, sub: id };
    },
  };
}

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: signingKeys },
    cookies: { keys: COOKIE_KEYS },
    findAccount,
    claims: {
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
      iss: null,
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
      groups: ['groups'],
    },
    conformIdTokenClaims: !CLAIMS_IN_ID_TOKEN,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    pkce: { required: () => true },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>error</title><h1>${escape(out.error)}</h1><p>${escape(out.error_description ?? '')}</p>`;
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 64 * 1024) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, 'text/plain', 'interaction does not match the cookie\n');
    return;
  }
  const { prompt, params, session } = details;
  if (req.method === 'GET' && action === undefined) {
    const abort = `<form method="post" action="/interaction/${escape(uid)}/abort"><button>Cancel</button></form>`;
    if (prompt.name === 'login') {
      send(res, 200, 'text/html', page('Sign in', `
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Account <input name="login" autofocus></label>
<label>Password <input name="password" type="password"></label>
<button>Sign in</button></form>${abort}`));
    } else {
      send(res, 200, 'text/html', page('Allow access', `
<p>${escape(params.client_id)} asks for: ${escape(params.scope)}</p>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button>Allow</button></form>${abort}`));
    }
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, 'text/plain', 'method not allowed\n');
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  switch (action) {
    case 'login': {
      if (prompt.name !== 'login') break;
      const id = form.get('login') ?? '';
      if (!Object.hasOwn(ACCOUNTS, id) || !form.get('password')) {
        send(res, 403, 'text/html', page('Sign in', '<p>Unknown account or empty password.</p>'));
        return;
      }
      const { amr, acr } = ACCOUNTS[id];
      const login = { accountId: id };
      if (amr !== undefined) login.amr = amr;
      if (acr !== undefined) login.acr = acr;
      await provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
      return;
    }
    case 'confirm': {
      if (prompt.name !== 'consent') break;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scope] of Object.entries(d.missingResourceScopes)) {
          grant.addResourceScope(indicator, scope.join(' '));
        }
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    case 'abort':
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
      return;
    default:
  }
  send(res, 400, 'text/plain', `no ${action} in prompt ${prompt.name}\n`);
}

function isLoopback(req) {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1';
}

// Rewrites HTTP Basic client credentials per TOKEN_AUTH_AS.
function aliasClient(req) {
  const auth = req.headers.authorization ?? '';
  if (!auth.toLowerCase().startsWith('basic ')) return;
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return;
  const id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
  if (!Object.hasOwn(TOKEN_AUTH_AS, id)) return;
  const target = CLIENTS.find((c) => c.client_id === TOKEN_AUTH_AS[id]);
  if (!target) return;
  const enc = (s) => encodeURIComponent(s);
  req.headers.authorization = `Basic ${Buffer.from(`${enc(target.client_id)}:${enc(target.client_secret)}`).toString('base64')}`;
}

let current; // the Provider in use; replaced on key rotation
let handle; // its request handler
let issuer;

// With TLS_CERT and TLS_KEY (PEM files) it serves HTTPS, as a provider does in production.
const tls = process.env.TLS_CERT && process.env.TLS_KEY
  ? { cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) }
  : null;
const scheme = tls ? 'https' : 'http';

const serve = async (req, res) => {
  try {
    if (!isLoopback(req)) {
      send(res, 403, 'text/plain', 'loopback only\n');
      return;
    }
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/__test/rotate-keys' && req.method === 'POST') {
      signingKeys = [newSigningKey(), signingKeys[0]];
      current = makeProvider(issuer);
      handle = current.callback();
      send(res, 200, 'application/json', JSON.stringify({ kid: signingKeys[0].kid }));
      return;
    }
    if (url.pathname === '/__test/kid') {
      send(res, 200, 'application/json', JSON.stringify({ kid: signingKeys[0].kid }));
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/);
    if (m) {
      await interaction(current, req, res, m[1], m[2]);
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') aliasClient(req);
    handle(req, res);
  } catch (err) {
    console.error('error', err);
    if (!res.headersSent) send(res, 500, 'text/plain', `${err.name}: ${err.message}\n`);
    else res.end();
  }
};

const server = tls ? https.createServer(tls, serve) : http.createServer(serve);

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = process.env.ISSUER || `${scheme}://127.0.0.1:${port}`;
  current = makeProvider(issuer);
  handle = current.callback();
  console.log(`listening on ${scheme}://127.0.0.1:${port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
