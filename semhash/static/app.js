// semhash search page: vanilla JS, no build step, nothing fetched from elsewhere.
// Every piece of document text goes through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showHits(heading, hits) {
  $("heading").hidden = false;
  $("heading").textContent = heading;
  const list = $("results");
  list.replaceChildren();
  for (const hit of hits) {
    const item = el("li", "hit");
    item.dataset.id = String(hit.id);
    const top = el("div");
    top.append(el("span", "path", hit.location));
    const cosine = hit.cosine === null ? "" : ` · cosine ${hit.cosine.toFixed(3)}`;
    top.append(el("span", "meta", `Hamming ${hit.distance}${cosine} · id ${hit.id}`));
    item.append(top, el("p", "snippet", hit.snippet));
    const link = el("a", "neighbours", "neighbours");
    link.href = `#similar/${encodeURIComponent(hit.id)}`;
    item.append(link);
    list.append(item);
  }
  setStatus(hits.length ? `${hits.length} result(s)` : "no match", false);
}

async function runQuery(q, k) {
  setStatus("searching…", false);
  try {
    const params = new URLSearchParams({ q, k: String(k) });
    const body = await getJSON(`/api/query?${params}`);
    showHits(`Results for “${q}”`, body.hits);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function runSimilar(id, k) {
  setStatus("searching…", false);
  try {
    const body = await getJSON(`/api/similar/${encodeURIComponent(id)}?k=${encodeURIComponent(k)}`);
    showHits(`Neighbours of ${body.location}`, body.hits);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// The address keeps the state (#q=... or #similar/ID), so the back button and links work.
function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  const k = $("k").value || "10";
  if (hash.startsWith("similar/")) {
    runSimilar(hash.slice("similar/".length), k);
  } else if (hash.startsWith("q=")) {
    const q = hash.slice(2);
    $("q").value = q;
    runQuery(q, k);
  }
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("q").value;
  if (!q.trim()) {
    setStatus("type something to search for", true);
    return;
  }
  const target = `#q=${encodeURIComponent(q)}`;
  if (location.hash === target) route();
  else location.hash = target;
});
window.addEventListener("hashchange", route);

async function loadInfo() {
  try {
    const info = await getJSON("/api/info");
    const model = info.model_name || "no model";
    $("info").textContent =
      `${info.db_path}: ${info.encoded} of ${info.documents} documents encoded · ${info.bits}-bit codes · ${model}`;
  } catch (error) {
    $("info").textContent = `index info unavailable: ${error.message}`;
  }
}

loadInfo();
route();
