// The gateway's JSON API, called with the session cookie (HttpOnly: this script never sees it).
// State-changing calls carry the session's CSRF token from GET /ui/session.

let csrf = '';
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function setCsrf(token) {
  csrf = token || '';
}

/** Called when a request finds the session gone (401): the app shows the sign-in form. */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    message = body?.error?.message || body?.detail || message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(resp.status, message);
}

/** Call the API: api('GET', '/key/list', null, {page: 1}) → the parsed JSON answer. */
export async function api(method, path, body, query) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = { accept: 'application/json' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = csrf;
  }
  const resp = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: method === 'GET' ? undefined : JSON.stringify(body || {}),
  });
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && !path.startsWith('/ui/')) onSignedOut();
    throw err;
  }
  return resp.json();
}

export async function signIn(username, password) {
  return api('POST', '/ui/login', { username, password });
}

export async function currentSession() {
  return api('GET', '/ui/session');
}

export async function signOut() {
  return api('POST', '/ui/logout', {});
}
