// GET /ui: one self-contained HTML page (inline CSS and JS, no external assets) showing the cluster as its members see it.
//
// The page fetches this node's /status, then every other member's through
// /status?member=NAME (observability.h), every kRefreshMs, and draws one row
// per member: role, Raft state, term, commit and applied index, apply lag,
// and from the leader's answer its replication progress (match, next).
// Names and addresses are user input: the script sets textContent only,
// never innerHTML. <body data-refreshes> counts completed refreshes (the
// headless-browser test waits on it).
#include <string>

namespace ckv::http {

const std::string& status_page_html() {
  static const std::string kPage = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>consensuskv status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f6f7f9; }
  h1 { font-size: 1.3em; margin: 0 0 .6em; }
  .summary { display: flex; gap: 1.5em; flex-wrap: wrap; margin-bottom: 1em; }
  .card { background: #fff; border: 1px solid #d9dde5; border-radius: 6px; padding: .5em .9em; }
  .card b { display: block; font-size: 1.2em; }
  table { border-collapse: collapse; background: #fff; border: 1px solid #d9dde5; width: 100%; }
  th, td { padding: .35em .7em; border-bottom: 1px solid #eceef2; text-align: right; white-space: nowrap; }
  th:first-child, td:first-child, td.text, th.text { text-align: left; }
  th { background: #eef0f4; font-weight: 600; }
  tr.leader td:first-child::after { content: " \2605"; color: #c08a00; }
  tr.down td { color: #a33; }
  .bar { display: inline-block; height: .6em; width: 6em; background: #e3e6ec; border-radius: 3px; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #3c8d5a; border-radius: 3px; }
  #error { color: #a33; margin: .5em 0; }
  footer { color: #6b7280; margin-top: .8em; font-size: .9em; }
</style>
</head>
<body data-refreshes="0">
<h1>consensuskv cluster</h1>
<div class="summary">
  <div class="card">this node<b id="self">&ndash;</b></div>
  <div class="card">leader<b id="leader">&ndash;</b></div>
  <div class="card">term<b id="term">&ndash;</b></div>
  <div class="card">members<b id="count">&ndash;</b></div>
</div>
<div id="error"></div>
<table>
  <thead><tr>
    <th>member</th><th class="text">role</th><th class="text">state</th><th>term</th><th>commit</th><th>applied</th>
    <th>apply lag</th><th>match</th><th>next</th><th class="text">replication</th><th>progress</th>
    <th class="text">API address</th>
  </tr></thead>
  <tbody id="members"></tbody>
</table>
<footer>Refreshes every 2 s from <code>/status</code>. Updated <span id="updated">never</span>.</footer>
<script>
"use strict";
const kRefreshMs = 2000;
const $ = (id) => document.getElementById(id);

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "\u2013" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function draw(self, views) {
  const leader = Object.values(views).find((v) => v && v.isLeader);
  $("self").textContent = self.id;
  $("leader").textContent = leader ? leader.id : (self.leaderId || "none known");
  $("term").textContent = (leader || self).term;
  $("count").textContent = self.members.length;
  const body = $("members");
  body.replaceChildren();
  for (const m of self.members) {
    const v = views[m.id] || {};
    const p = leader ? (leader.members.find((x) => x.id === m.id) || {}) : {};
    const row = document.createElement("tr");
    row.dataset.member = m.id;
    if (v.isLeader) row.className = "leader";
    if (v.error) row.className = "down";
    cell(row, m.id, "text");
    cell(row, m.role, "text");
    cell(row, v.error ? "unreachable: " + v.error : v.state, "text");
    cell(row, v.term);
    cell(row, v.commitIndex);
    cell(row, v.appliedIndex);
    cell(row, v.error ? undefined : v.commitIndex - v.appliedIndex);
    cell(row, p.match);
    cell(row, p.next);
    cell(row, p.progress, "text");
    const bar = cell(row, "");
    if (leader && p.match !== undefined && leader.lastIndex > 0) {
      const outer = document.createElement("span");
      outer.className = "bar";
      const inner = document.createElement("span");
      inner.style.width = Math.min(100, (100 * p.match) / leader.lastIndex).toFixed(1) + "%";
      outer.appendChild(inner);
      bar.replaceChildren(outer);
      bar.title = p.match + " of " + leader.lastIndex;
    }
    cell(row, m.apiAddress, "text");
    body.appendChild(row);
  }
}

async function refresh() {
  try {
    const self = await getJson("/status");
    const views = { [self.id]: self };
    await Promise.all(self.members.filter((m) => m.id !== self.id).map(async (m) => {
      try {
        views[m.id] = await getJson("/status?member=" + encodeURIComponent(m.id));
      } catch (e) {
        views[m.id] = { error: String(e.message || e) };
      }
    }));
    draw(self, views);
    $("error").textContent = "";
    $("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    $("error").textContent = "cannot read /status: " + (e.message || e);
  }
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
  setTimeout(refresh, kRefreshMs);
}
refresh();
</script>
</body>
</html>
)html";
  return kPage;
}

}  // namespace ckv::http
