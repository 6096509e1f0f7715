// The JSON API (katib/ui/api.py documents it) and its live event stream.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && body.errors) || [];
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = { message: `the server answered HTTP ${response.status} without JSON` };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const url = query.toString() ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new ApiError(0, { message: "The dashboard's server cannot be reached; is katib ui still running?" });
  }
  return answer(response);
}

// A changing request: the X-Katib-UI header tells the server it comes from these pages.
export async function send(method, path, body, contentType = "application/json") {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { "X-Katib-UI": "1", "Content-Type": contentType, Accept: "application/json" },
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
  } catch (err) {
    throw new ApiError(0, { message: "The dashboard's server cannot be reached; is katib ui still running?" });
  }
  return answer(response);
}

// Calls onUpdate(payload) whenever the watched resource changes and onProblem(message) while
// it cannot be read (onProblem(null) once it can again). Returns a function that stops it.
export function watch(params, token, onUpdate, onProblem) {
  const query = new URLSearchParams({ ...params, token: token || "" });
  const source = new EventSource(`/api/events?${query}`);
  let problem = false;
  source.addEventListener("update", (event) => {
    if (problem) onProblem(null);
    problem = false;
    onUpdate(JSON.parse(event.data));
  });
  source.addEventListener("problem", (event) => {
    problem = true;
    onProblem(JSON.parse(event.data));
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CONNECTING) {
      problem = true;
      onProblem({ message: "Lost the connection to the dashboard's server; retrying…", kind: "Disconnected" });
    }
  };
  // A page left for another may be kept for the Back button; its stream must not stay open
  // meanwhile (the browser allows six connections to a server, and the next page needs them).
  const stop = () => source.close();
  window.addEventListener("pagehide", stop);
  return () => {
    window.removeEventListener("pagehide", stop);
    stop();
  };
}

// Back to a page the browser kept: its stream was closed when it was left; start afresh.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});

export const info = (() => {
  let cached = null;
  return () => (cached = cached || get("/api/info"));
})();
