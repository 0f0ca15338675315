// The pages' only way to the server: JSON over fetch with the signed-in user's bearer token. Errors arrive as
// RFC 9457 problem documents and are thrown as ApiError, so a page can show the message next to the field it names.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.type = problem.type || "about:blank";
    this.title = problem.title || "";
    this.problem = problem;
    // [{field: "body.lines[0].days", message: "..."}] when the server named fields (api/errors.py: errors[].path)
    this.fields = (problem.errors || problem.invalid_params || []).map((e) => ({
      field: e.path ?? e.field ?? e.name ?? "", message: e.message ?? e.detail ?? e.reason ?? "",
    }));
  }
}

// One signed-in session per page kind ("doctor", "pharmacy"), kept for this tab only: closing the tab signs out.
// A stale access token is still returned: its refresh token may be good, and the server decides (401 → refresh).
export class Session {
  constructor(kind) { this.key = `lienthong.session.${kind}`; }
  get() {
    const raw = sessionStorage.getItem(this.key);
    return raw ? JSON.parse(raw) : null;
  }
  set(value) { sessionStorage.setItem(this.key, JSON.stringify(value)); }
  clear() { sessionStorage.removeItem(this.key); }
}

// api("POST", "/dispensing/verify", {body: {...}, token, query: {q: "..."}, headers: {"Idempotency-Key": k}})
export async function api(method, path, { body, token, query, signal, headers: extra, raw = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const headers = { Accept: "application/json, application/problem+json", ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { type: "network", title: "network", detail: String(err) });
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  const data = text ? safeJson(text) : null;
  if (!response.ok) throw new ApiError(response.status, data && typeof data === "object" ? data : { detail: text });
  return data;
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return text; }
}
