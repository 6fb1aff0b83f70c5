// semhash search page: vanilla JS, no build step, nothing fetched from elsewhere.
// Every piece of document text goes through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);

// Queries up to this many characters are kept in the address (#q=...), so they can be bookmarked and shared;
// longer ones are sent in a POST body and kept in the history entry's state, never in a URL.
const SHORT_QUERY = 200;
// How much of a query the heading echoes.
const HEADING_CHARS = 80;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url, body) {
  const init = { headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const payload = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

// One line, at most `size` characters, an ellipsis where it was cut.
function shorten(text, size) {
  const flat = text.split(/\s+/).filter(Boolean).join(" ");
  return flat.length <= size ? flat : `${flat.slice(0, size - 1)}…`;
}

// A path without the indexed folder (the server's `root`); the full path stays in the title.
function relative(path, root) {
  return root && path.startsWith(root) && path.length > root.length ? path.slice(root.length) : path;
}

// A paragraph of `text` with the query's words (two characters or more) in <mark>, built from text nodes only.
function emphasised(className, text, query) {
  const node = el("p", className);
  const words = ((query || "").toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) || []).slice(0, 50);
  if (!words.length) {
    node.textContent = text;
    return node;
  }
  const escaped = [...new Set(words)].map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  for (const [i, part] of text.split(pattern).entries()) {
    if (!part) continue;
    node.append(i % 2 ? el("mark", "", part) : document.createTextNode(part));
  }
  return node;
}

// A paragraph of `text` with the [start, end) spans the server found the query's words at in <mark>.
function marked(className, text, spans) {
  const node = el("p", className);
  let at = 0;
  for (const [start, end] of spans) {
    if (start < at || end > text.length) continue;
    if (start > at) node.append(document.createTextNode(text.slice(at, start)));
    node.append(el("mark", "", text.slice(start, end)));
    at = end;
  }
  if (at < text.length) node.append(document.createTextNode(text.slice(at)));
  return node;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function clearResults() {
  $("weak").hidden = true;
  $("heading").hidden = true;
  $("heading").textContent = "";
  $("results").replaceChildren();
}

function showError(message) {
  clearResults();
  setStatus(message, true);
}

function matchLabel(hit) {
  const bits = hit.bits || 32;
  const details = [];
  if (hit.cosine !== null) details.push(`cosine similarity ${hit.cosine.toFixed(3)}`);
  details.push(`Hamming distance ${hit.distance} of ${bits} bits`, `id ${hit.id}`, `code ${hit.code}`);
  const label = hit.cosine === null ? `match ${bits - hit.distance}/${bits} bits` : `match ${hit.cosine.toFixed(2)}`;
  return [label, details.join(" · ")];
}

function showHits(heading, hits, root, weak, query) {
  $("weak").hidden = !weak;
  $("heading").hidden = false;
  $("heading").textContent = heading;
  const list = $("results");
  list.replaceChildren();
  for (const hit of hits) {
    const item = el("li", "hit");
    item.dataset.id = String(hit.id);
    const top = el("div");
    const path = el("a", "path", relative(hit.location, root));
    path.href = `/documents/${encodeURIComponent(hit.id)}`;
    path.title = hit.location;
    const [label, details] = matchLabel(hit);
    const meta = el("span", "meta", label);
    meta.title = details;
    top.append(path, meta);
    const marks = hit.passage && hit.passage.snippet_highlights;
    item.append(top, marks ? marked("snippet", hit.snippet, marks) : emphasised("snippet", hit.snippet, query));
    if (hit.passage && hit.passage.page !== null && hit.passage.page !== undefined) {
      meta.textContent += ` · page ${hit.passage.page}`;
    }
    if (hit.passage) meta.title += ` · passage: characters ${hit.passage.start}-${hit.passage.end}`;
    if (hit.copies && hit.copies.length) {
      const copies = el("details", "copies");
      copies.append(el("summary", "", `+${hit.copies.length} ${hit.copies.length === 1 ? "copy" : "copies"}`));
      const list = el("ul");
      // why each one folded: the same content, or near-identical text with its word overlap
      const folded = hit.folded && hit.folded.length === hit.copies.length ? hit.folded : [];
      hit.copies.forEach((copy, i) => {
        const entry = el("li", "", relative(copy, root));
        const why = folded[i];
        if (why) {
          const overlap = why.overlap === null || why.overlap === undefined ? "" : `, overlap ${why.overlap.toFixed(2)}`;
          entry.append(el("span", "why", ` (${why.why}${overlap})`));
        }
        list.append(entry);
      });
      copies.append(list);
      item.append(copies);
    }
    const link = el("a", "neighbours", "more like this");
    link.href = `#similar/${encodeURIComponent(hit.id)}`;
    item.append(link);
    list.append(item);
  }
  setStatus(hits.length ? `${hits.length} result(s)` : "no match", false);
}

async function runQuery(q, k) {
  setStatus("searching…", false);
  try {
    const request = { q, k: Number(k), mode: $("mode").value, passages: $("passages").checked };
    const body = await getJSON("/api/query", request);
    showHits(`Results for “${shorten(q, HEADING_CHARS)}”`, body.hits, body.root, body.weak, q);
  } catch (error) {
    showError(error.message);
  }
}

async function runSimilar(id, k) {
  setStatus("searching…", false);
  try {
    const body = await getJSON(`/api/similar/${encodeURIComponent(id)}?k=${encodeURIComponent(k)}`);
    showHits(`Documents like ${relative(body.location, body.root)}`, body.hits, body.root);
  } catch (error) {
    showError(error.message);
  }
}

// The address keeps the state (#q=... or #similar/ID), so the back button and links work; a long query
// lives in the history entry's state instead (see SHORT_QUERY).
function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  const k = $("k").value || "10";
  if (hash.startsWith("similar/")) {
    runSimilar(hash.slice("similar/".length), k);
  } else if (hash.startsWith("q=")) {
    // #q=<text>&mode=<mode>: the mode is the last "&mode=" (a query may hold "&" itself)
    let q = hash.slice(2);
    const cut = q.lastIndexOf("&mode=");
    $("mode").value = "semantic";
    if (cut >= 0) {
      const mode = q.slice(cut + "&mode=".length);
      if ([...$("mode").options].some((option) => option.value === mode)) $("mode").value = mode;
      q = q.slice(0, cut);
    }
    $("q").value = q;
    runQuery(q, k);
  } else if (!hash && history.state && typeof history.state.q === "string") {
    $("q").value = history.state.q;
    runQuery(history.state.q, k);
  } else if (!hash) {
    clearResults();
    setStatus("", false);
  }
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("q").value;
  if (!q.trim()) {
    showError("type something to search for");
    if (location.hash || history.state) history.pushState(null, "", location.pathname);
    return;
  }
  if (q.length > SHORT_QUERY) {
    history.pushState({ q }, "", location.pathname);
    runQuery(q, $("k").value || "10");
    return;
  }
  const mode = $("mode").value;
  const target = `#q=${encodeURIComponent(q)}` + (mode === "semantic" ? "" : `&mode=${encodeURIComponent(mode)}`);
  if (location.hash === target) route();
  else location.hash = target;
});
// Moving to an entry with a hash fires hashchange; to one without (a long query, a cleared page) popstate.
// Each event answers only its own case, so one move never runs the query twice.
window.addEventListener("hashchange", () => {
  if (location.hash) route();
});
window.addEventListener("popstate", () => {
  if (!location.hash) route();
});

async function loadInfo() {
  try {
    const info = await getJSON("/api/info");
    const model = info.model_name || "no model";
    const name = info.db_path.split(/[\\/]/).pop();
    $("info").textContent =
      `${name}: ${info.encoded} of ${info.documents} documents searchable · ${info.bits}-bit codes · ${model}`;
    $("info").title = info.db_path;
  } catch (error) {
    $("info").textContent = `index info unavailable: ${error.message}`;
  }
}

loadInfo();
route();
