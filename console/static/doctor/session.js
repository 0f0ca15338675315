// The doctor's sign-in, shared with the video call page: the session lives in sessionStorage under
// Session("doctor") as {accessToken, refreshToken, expiresAt, account: {id, full_name, role}}. The access token is
// rotated with the refresh endpoint shortly before it expires; when that fails the doctor signs in again.

import { api, ApiError, Session } from "/console/common/api.js";

export const session = new Session("doctor");
const REFRESH_MARGIN_MS = 60_000;
let refreshing = null;
let timer = null;
let onSignedOut = () => {};

export function whenSignedOut(callback) { onSignedOut = callback; }

function expiresAt(seconds) { return new Date(Date.now() + seconds * 1000).toISOString(); }

// Stores the session from a /auth/login, /auth/totp/confirm or /auth/refresh answer.
export async function store(answer, account) {
  const value = { accessToken: answer.access_token, refreshToken: answer.refresh_token,
    expiresAt: expiresAt(answer.expires_in), account };
  if (!account) {
    const me = await api("GET", "/me", { token: answer.access_token });
    value.account = { id: me.account_id, full_name: me.full_name, role: me.role };
  }
  session.set(value);
  schedule();
  return value;
}

async function refresh() {
  const current = session.get();
  if (!current) throw new ApiError(401, { type: "/problems/session-expired" });
  refreshing ??= api("POST", "/auth/refresh", { body: { refresh_token: current.refreshToken } })
    .then((answer) => store(answer, current.account))
    .finally(() => { refreshing = null; });
  return refreshing;
}

// Keeps the token fresh while the console is open (also after a sleep, when the timer fires late).
export function schedule() {
  clearTimeout(timer);
  const current = session.get();
  if (!current) return;
  const wait = Math.max(0, Date.parse(current.expiresAt) - Date.now() - REFRESH_MARGIN_MS);
  timer = setTimeout(() => refresh().catch(expire), wait);
}

function expire() {
  clearTimeout(timer);
  session.clear();
  onSignedOut(true);
}

// api() with the doctor's bearer token; one retry after a refresh when the server says the token is stale.
export async function call(method, path, options = {}) {
  let current = session.get();
  if (!current) { expire(); throw new ApiError(401, { type: "/problems/session-expired" }); }
  if (Date.parse(current.expiresAt) - Date.now() < REFRESH_MARGIN_MS) current = await refresh().catch(failed);
  try {
    return await api(method, path, { ...options, token: current.accessToken });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    current = await refresh().catch(failed);
    return api(method, path, { ...options, token: current.accessToken });
  }
}

function failed(err) {
  expire();
  throw err;
}

export async function signOut() {
  const current = session.get();
  clearTimeout(timer);
  session.clear();
  if (current) {
    await api("POST", "/auth/logout", { token: current.accessToken, body: { refresh_token: current.refreshToken } })
      .catch(() => {}); // signing out locally is what matters; the refresh token dies with its 12 h lifetime anyway
  }
  onSignedOut(false);
}
