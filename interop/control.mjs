// The sandbox's control API (`POST /sandbox/...`, JSON), as the interop
// scripts call it: a function bound to one sandbox's base URL.
export function controlAt(base) {
  return async function control(path, body) {
    const r = await fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    if (!r.ok) throw new Error(`control ${path}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  };
}
