// A loopback OpenID Provider for nethealth-oidc's integration tests.
//
// It runs panva's certified `oidc-provider` (pinned in package.json) with a configuration close to what the
// Net Health Accounts site offers (code flow, refresh tokens with rotation, per-scope consent), plus a small
// JSON interaction API so that a test can log in and consent without a browser. See README.md.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import util from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;

// ---------------------------------------------------------------------------------------------- settings

function intFromEnv(name, fallback, min = 1) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function oneOf(name, fallback, allowed) {
  const value = env[name] || fallback;
  if (!allowed.includes(value)) {
    throw new Error(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function flag(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new Error(`${name} must be 1 or 0, got ${JSON.stringify(raw)}`);
}

const HOST = '127.0.0.1';
const PORT = intFromEnv('PORT', 4455);
const ISSUER = `http://${HOST}:${PORT}`;
const LOG_FILE = env.LOG_FILE || path.join(here, 'run', `oidc-provider-${PORT}.log`);

const ACCESS_TOKEN_TTL = intFromEnv('ACCESS_TOKEN_TTL', 60);
const CLIENT_CREDENTIALS_TTL = intFromEnv('CLIENT_CREDENTIALS_TTL', ACCESS_TOKEN_TTL);
const ID_TOKEN_TTL = intFromEnv('ID_TOKEN_TTL', 300);
const REFRESH_TOKEN_TTL = intFromEnv('REFRESH_TOKEN_TTL', 3600);
const AUTHORIZATION_CODE_TTL = intFromEnv('AUTHORIZATION_CODE_TTL', 60);
const SESSION_TTL = intFromEnv('SESSION_TTL', 3600);
// oidc-provider accepts opaque tokens up to clockTolerance seconds after they expire (its default is 15).
const CLOCK_TOLERANCE = intFromEnv('CLOCK_TOLERANCE', 0, 0);
const ROTATE_REFRESH_TOKEN = flag('ROTATE_REFRESH_TOKEN', true);
const PKCE_REQUIRED = flag('PKCE_REQUIRED', false);
const OFFLINE_ACCESS_ADDS_CONSENT_PROMPT = flag('OFFLINE_ACCESS_ADDS_CONSENT_PROMPT', false);
const REGISTRATION_INITIAL_ACCESS_TOKEN = env.REGISTRATION_INITIAL_ACCESS_TOKEN || '';
const ISS_MODE = oneOf('ISS_MODE', 'normal', ['normal', 'unadvertised', 'omit', 'missing', 'wrong']);
const TOKEN_RESPONSE_SCOPE = oneOf('TOKEN_RESPONSE_SCOPE', 'include', ['include', 'omit']);
// Stock oidc-provider takes a client secret from either the Authorization header or the form body, whatever the
// client registered. Strict mode (the default) holds each client to its registered token_endpoint_auth_method.
const STRICT_CLIENT_AUTH = flag('STRICT_CLIENT_AUTH', true);
// Pushed authorization requests (RFC 9126) are always offered; PAR_REQUIRED=1 makes /auth refuse plain requests.
const PAR_REQUIRED = flag('PAR_REQUIRED', false);
// DPoP (RFC 9449) is always offered; DPOP_REQUIRE_NONCE=1 makes the provider demand a server nonce (use_dpop_nonce).
const DPOP_REQUIRE_NONCE = flag('DPOP_REQUIRE_NONCE', false);

// Client authentication with a signed JWT: private_key_jwt (asymmetric) and client_secret_jwt (HMAC).
const CLIENT_AUTH_SIGNING_ALGS = ['RS256', 'RS384', 'PS256', 'ES256', 'ES384', 'HS256', 'HS384', 'HS512'];
const DPOP_SIGNING_ALGS = ['ES256', 'ES384', 'RS256', 'PS256', 'Ed25519', 'EdDSA'];

const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'patients.read', 'patients.write'];

// The static client, for tests that do not want to go through registration.
const STATIC_CLIENT = {
  client_id: 'nethealth-test',
  client_secret: 'nethealth-test-secret',
  client_name: 'nethealth-oidc static test client',
  redirect_uris: ['http://127.0.0.1:8080/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1:8080/logged-out'],
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

// ---------------------------------------------------------------------------------------------- logging

fs.mkdirSync(path.dirname(LOG_FILE), { recursive: true });
const logStream = fs.createWriteStream(LOG_FILE, { flags: 'a' });

function log(...args) {
  logStream.write(`${new Date().toISOString()} ${util.formatWithOptions({ breakLength: Infinity }, ...args)}\n`);
}

// oidc-provider reports its notices through console.*: send everything to the log file. The ready line is
// written straight to stdout.
for (const method of ['log', 'info', 'warn', 'error', 'debug']) {
  console[method] = (...args) => log(`[console.${method}]`, ...args); // eslint-disable-line no-console
}

// Imported only now, so that its import-time notices go to the log file too.
const { default: Provider } = await import('oidc-provider');

// ---------------------------------------------------------------------------------------------- accounts

// Any non-empty login name made of [A-Za-z0-9._-] is a valid test user; the claims derive from it.
const LOGIN_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function accountClaims(login) {
  const given = login.charAt(0).toUpperCase() + login.slice(1);
  return {
    sub: login,
    name: `${given} Test`,
    given_name: given,
    family_name: 'Test',
    preferred_username: login,
    email: `${login}@example.test`,
    email_verified: true,
  };
}

async function findAccount(ctx, sub) {
  if (!LOGIN_PATTERN.test(sub)) return undefined;
  return {
    accountId: sub,
    async claims() {
      return accountClaims(sub);
    },
  };
}

// ---------------------------------------------------------------------------------------------- keys

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `rs256-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

// ---------------------------------------------------------------------------------------------- provider

const stats = {};
function resetStats() {
  stats.token = {};
  stats.token_errors = {};
  stats.client_auth_rejected = 0;
  stats.resource = 0;
  stats.userinfo = 0;
}
resetStats();

const configuration = {
  clients: [STATIC_CLIENT],
  findAccount,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: SCOPES,
  responseTypes: ['code'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  features: {
    devInteractions: { enabled: false },
    registration: {
      enabled: true,
      initialAccessToken: REGISTRATION_INITIAL_ACCESS_TOKEN || false,
    },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    // Without resource indicators every scope is a plain scope and access tokens are opaque.
    resourceIndicators: { enabled: false },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: PAR_REQUIRED },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => DPOP_REQUIRE_NONCE,
    },
  },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none'],
  enabledJWA: {
    clientAuthSigningAlgValues: CLIENT_AUTH_SIGNING_ALGS,
    dPoPSigningAlgValues: DPOP_SIGNING_ALGS,
  },
  pkce: {
    // oidc-provider 9 offers S256 only. Public clients always need PKCE; confidential clients may use it (PKCE_REQUIRED=1 makes it mandatory).
    required: (ctx, client) => client.clientAuthMethod === 'none' || PKCE_REQUIRED,
  },
  rotateRefreshToken: ROTATE_REFRESH_TOKEN,
  clockTolerance: CLOCK_TOLERANCE,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: AUTHORIZATION_CODE_TTL,
    ClientCredentials: CLIENT_CREDENTIALS_TTL,
    IdToken: ID_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Interaction: 600,
    Session: SESSION_TTL,
    Grant: Math.max(REFRESH_TOKEN_TTL, SESSION_TTL),
  },
  // Errors shown at the provider itself (bad client_id, bad redirect_uri, ...) come back as JSON.
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(ISSUER, configuration);

provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params.grant_type;
  stats.token[type] = (stats.token[type] || 0) + 1;
});
provider.on('grant.error', (ctx, err) => {
  const type = ctx.oidc.params?.grant_type || 'unknown';
  stats.token_errors[type] = (stats.token_errors[type] || 0) + 1;
  log('grant.error', type, err.error, err.error_description, err.error_detail || '');
});
for (const event of ['authorization.error', 'registration_create.error', 'registration_read.error',
  'registration_update.error', 'registration_delete.error', 'pushed_authorization_request.error', 'revocation.error',
  'introspection.error', 'userinfo.error', 'server_error', 'end_session.error']) {
  provider.on(event, (ctx, err) => log(event, err.error || err.message, err.error_description || '', err.error_detail || ''));
}

// Test knobs that rewrite the provider's own responses (all off by default).
provider.use(async (ctx, next) => {
  if (OFFLINE_ACCESS_ADDS_CONSENT_PROMPT && ctx.path === '/auth' && ctx.method === 'GET') {
    const { scope, prompt } = ctx.query;
    if (typeof scope === 'string' && scope.split(' ').includes('offline_access') && !prompt) {
      ctx.query = { ...ctx.query, prompt: 'consent' };
    }
  }

  await next();

  if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
    if (ISS_MODE === 'unadvertised' || ISS_MODE === 'omit') {
      delete ctx.body.authorization_response_iss_parameter_supported;
    }
  }

  const location = ctx.response.get('location');
  if (location && ISS_MODE !== 'normal' && ISS_MODE !== 'unadvertised') {
    let url;
    try {
      url = new URL(location);
    } catch {
      url = undefined;
    }
    if (url && url.searchParams.has('iss') && (url.searchParams.has('code') || url.searchParams.has('error'))) {
      if (ISS_MODE === 'wrong') {
        url.searchParams.set('iss', 'http://127.0.0.1:1');
      } else {
        url.searchParams.delete('iss');
      }
      ctx.set('Location', url.href);
    }
  }

  if (TOKEN_RESPONSE_SCOPE === 'omit' && ctx.path === '/token' && ctx.body && typeof ctx.body === 'object') {
    delete ctx.body.scope;
  }
});

// ---------------------------------------------------------------------------------------------- HTTP helpers

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function fail(res, status, error, description) {
  sendJson(res, status, { error, error_description: description });
}

const MAX_BODY = 56 * 1024;

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// Reads a form (application/x-www-form-urlencoded) or JSON body into a URLSearchParams.
async function readForm(req) {
  const text = (await readBody(req)).toString('utf8');
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') {
    const parsed = text ? JSON.parse(text) : {};
    const form = new URLSearchParams();
    for (const [key, value] of Object.entries(parsed)) {
      for (const item of Array.isArray(value) ? value : [value]) form.append(key, String(item));
    }
    return form;
  }
  return new URLSearchParams(text);
}

// ---------------------------------------------------------------------------------------------- interactions

function splitScope(value) {
  return (value || '').split(' ').filter(Boolean);
}

function describe(details) {
  const { prompt, params, session, uid } = details;
  const requested = splitScope(params.scope);
  const missing = prompt.details?.missingOIDCScope || [];
  return {
    uid,
    prompt: prompt.name,
    reasons: prompt.reasons,
    details: prompt.details,
    client_id: params.client_id,
    redirect_uri: params.redirect_uri,
    requested_scopes: requested,
    missing_scopes: missing,
    account: session?.accountId || null,
    actions: prompt.name === 'login'
      ? { login: `/interaction/${uid}/login`, abort: `/interaction/${uid}/abort` }
      : { confirm: `/interaction/${uid}/confirm`, abort: `/interaction/${uid}/abort` },
  };
}

async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    fail(res, 400, 'interaction_not_found', `no interaction session for this request (${err.message}); keep the cookies of the flow and do not reuse a finished interaction`);
    return;
  }
  if (details.uid !== uid) {
    fail(res, 400, 'interaction_mismatch', `the interaction cookie belongs to ${details.uid}, not ${uid}`);
    return;
  }

  if (!action) {
    if (req.method !== 'GET') {
      fail(res, 405, 'method_not_allowed', 'use GET to read an interaction');
      return;
    }
    // The prompt is also in a header, so that a driver needs no JSON parser to pick its next step.
    sendJson(res, 200, describe(details), { 'X-Interaction-Prompt': details.prompt.name });
    return;
  }
  if (req.method !== 'POST') {
    fail(res, 405, 'method_not_allowed', `use POST for /interaction/:uid/${action}`);
    return;
  }

  let form;
  try {
    form = await readForm(req);
  } catch (err) {
    fail(res, 400, 'invalid_request', `could not read the form: ${err.message}`);
    return;
  }

  const { prompt, params, session } = details;

  if (action === 'abort') {
    const description = form.get('error_description') || 'End-User aborted interaction';
    log('interaction', uid, 'abort', description);
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === 'login') {
    if (prompt.name !== 'login') {
      fail(res, 400, 'wrong_prompt', `this interaction asks for ${prompt.name}, not login`);
      return;
    }
    const login = form.get('login') || '';
    if (!LOGIN_PATTERN.test(login)) {
      fail(res, 400, 'invalid_login', 'login must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"');
      return;
    }
    log('interaction', uid, 'login', login);
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === 'confirm') {
    if (prompt.name !== 'consent') {
      fail(res, 400, 'wrong_prompt', `this interaction asks for ${prompt.name}, not consent`);
      return;
    }
    const requested = splitScope(params.scope);
    const missing = prompt.details.missingOIDCScope || [];
    let granted;
    if (form.has('scope')) {
      granted = new Set(form.getAll('scope').flatMap(splitScope));
      const unknown = [...granted].filter((scope) => !requested.includes(scope));
      if (unknown.length) {
        fail(res, 400, 'invalid_scope', `not requested, cannot be granted: ${unknown.join(' ')}`);
        return;
      }
      // openid is required, like IdentityServer's required scopes: it cannot be unticked.
      if (requested.includes('openid')) granted.add('openid');
    } else {
      granted = new Set(requested);
    }

    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });

    const toGrant = missing.filter((scope) => granted.has(scope));
    const toReject = missing.filter((scope) => !granted.has(scope));
    if (toGrant.length) grant.addOIDCScope(toGrant.join(' '));
    if (toReject.length) grant.rejectOIDCScope(toReject.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    log('interaction', uid, 'consent', { granted: toGrant, rejected: toReject });
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  fail(res, 404, 'not_found', `unknown interaction action ${action}`);
}

// ---------------------------------------------------------------------------------------------- client auth

const CLIENT_AUTH_PATHS = new Set(['/token', '/token/revocation', '/token/introspection']);

// With STRICT_CLIENT_AUTH, rejects a client_secret_basic client that sends its secret in the form body, and a
// client_secret_post client that sends it in the Authorization header. Returns true when it answered the request.
// It reads the body and leaves it in req.body, where oidc-provider picks it up.
async function rejectMismatchedClientAuth(req, res) {
  let body;
  try {
    body = await readBody(req);
  } catch (err) {
    fail(res, 400, 'invalid_request', err.message);
    return true;
  }
  req.body = body;
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return false;
  const form = new URLSearchParams(body.toString('utf8'));
  const header = req.headers.authorization || '';
  const basic = /^basic\s+(\S+)$/i.exec(header);
  let clientId = form.get('client_id');
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    try {
      clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    } catch {
      return false;
    }
  }
  if (!clientId) return false;
  const client = await provider.Client.find(clientId);
  if (!client) return false;
  const registered = client.clientAuthMethod;
  let used;
  if (basic) used = 'client_secret_basic';
  else if (form.has('client_secret')) used = 'client_secret_post';
  else return false;
  if ((registered === 'client_secret_basic' || registered === 'client_secret_post') && used !== registered) {
    stats.client_auth_rejected += 1;
    log('client auth rejected', clientId, 'registered', registered, 'used', used);
    const headers = basic ? { 'WWW-Authenticate': 'Basic realm="nethealth-test"' } : {};
    sendJson(res, 401, {
      error: 'invalid_client',
      error_description: `client authentication failed: the client is registered for ${registered} but used ${used}`,
    }, headers);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------- test routes

function bearerError(res, status, error, description, extra = '') {
  const challenge = `Bearer realm="nethealth-test", error="${error}", error_description="${description}"${extra}`;
  sendJson(res, status, { error, error_description: description }, { 'WWW-Authenticate': challenge });
}

// A protected resource, for "bearer call" tests: GET /__test/resource[?scope=patients.read].
async function resource(req, res, url) {
  stats.resource += 1;
  const header = req.headers.authorization || '';
  const match = /^Bearer ([^\s]+)$/i.exec(header);
  if (!match) {
    res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="nethealth-test"', 'Content-Length': 0 });
    res.end();
    return;
  }
  const value = match[1];
  const token = (await provider.AccessToken.find(value)) || (await provider.ClientCredentials.find(value));
  if (!token || token.isExpired) {
    bearerError(res, 401, 'invalid_token', 'The access token is expired, revoked or unknown');
    return;
  }
  const scopes = splitScope(token.scope);
  const needed = splitScope(url.searchParams.get('scope'));
  const lacking = needed.filter((scope) => !scopes.includes(scope));
  if (lacking.length) {
    bearerError(res, 403, 'insufficient_scope', 'The access token lacks a required scope', `, scope="${needed.join(' ')}"`);
    return;
  }
  sendJson(res, 200, {
    sub: token.accountId || null,
    client_id: token.clientId,
    scope: token.scope || '',
    exp: token.exp,
  });
}

async function testRoute(req, res, url) {
  const route = url.pathname.slice('/__test/'.length);
  if (route === 'health' && req.method === 'GET') {
    sendJson(res, 200, { ok: true, issuer: ISSUER, pid: process.pid });
    return;
  }
  if (route === 'stats' && req.method === 'GET') {
    sendJson(res, 200, stats);
    return;
  }
  if (route === 'stats/reset' && req.method === 'POST') {
    resetStats();
    sendJson(res, 200, stats);
    return;
  }
  if (route === 'config' && req.method === 'GET') {
    sendJson(res, 200, {
      issuer: ISSUER,
      scopes: SCOPES,
      access_token_ttl: ACCESS_TOKEN_TTL,
      client_credentials_ttl: CLIENT_CREDENTIALS_TTL,
      id_token_ttl: ID_TOKEN_TTL,
      refresh_token_ttl: REFRESH_TOKEN_TTL,
      authorization_code_ttl: AUTHORIZATION_CODE_TTL,
      session_ttl: SESSION_TTL,
      clock_tolerance: CLOCK_TOLERANCE,
      rotate_refresh_token: ROTATE_REFRESH_TOKEN,
      pkce_required: PKCE_REQUIRED,
      offline_access_adds_consent_prompt: OFFLINE_ACCESS_ADDS_CONSENT_PROMPT,
      registration_requires_initial_access_token: Boolean(REGISTRATION_INITIAL_ACCESS_TOKEN),
      iss_mode: ISS_MODE,
      token_response_scope: TOKEN_RESPONSE_SCOPE,
      strict_client_auth: STRICT_CLIENT_AUTH,
      par_required: PAR_REQUIRED,
      dpop_require_nonce: DPOP_REQUIRE_NONCE,
      client_auth_signing_algs: CLIENT_AUTH_SIGNING_ALGS,
      dpop_signing_algs: DPOP_SIGNING_ALGS,
      static_client: { client_id: STATIC_CLIENT.client_id, redirect_uris: STATIC_CLIENT.redirect_uris },
    });
    return;
  }
  if (route === 'resource') {
    await resource(req, res, url);
    return;
  }
  fail(res, 404, 'not_found', `no test route ${req.method} ${url.pathname}`);
}

// ---------------------------------------------------------------------------------------------- server

const providerCallback = provider.callback();
const INTERACTION_ROUTE = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/;

const server = http.createServer(async (req, res) => {
  const started = Date.now();
  res.on('finish', () => log(req.method, req.url.split('?')[0], res.statusCode, `${Date.now() - started}ms`));
  try {
    const url = new URL(req.url, ISSUER);
    if (url.pathname === '/me') stats.userinfo += 1;
    const interactionMatch = INTERACTION_ROUTE.exec(url.pathname);
    if (interactionMatch) {
      await interaction(req, res, interactionMatch[1], interactionMatch[2]);
    } else if (url.pathname.startsWith('/__test/')) {
      await testRoute(req, res, url);
    } else if (STRICT_CLIENT_AUTH && req.method === 'POST' && CLIENT_AUTH_PATHS.has(url.pathname)
      && await rejectMismatchedClientAuth(req, res)) {
      // answered
    } else {
      providerCallback(req, res);
    }
  } catch (err) {
    log('unhandled error', err);
    if (!res.headersSent) fail(res, 500, 'server_error', err.message);
    else res.end();
  }
});

server.on('error', (err) => {
  log('server error', err);
  process.stderr.write(`oidc-provider peer: cannot listen on ${HOST}:${PORT}: ${err.message}\n`);
  process.exit(1);
});

function shutdown(signal) {
  log(`received ${signal}, shutting down`);
  server.close(() => logStream.end(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));


server.listen(PORT, HOST, () => {
  log(`listening, issuer ${ISSUER}, log ${LOG_FILE}`);
  process.stdout.write(`oidc-provider peer ready: issuer ${ISSUER} pid ${process.pid}\n`);
});
