"use strict";
// The page is a thin view of the JSON API: every figure shown is a field of /api/predict, /api/compare or
// /api/sweep, formatted. The inputs live in the URL (shareable).
const $ = (id) => document.getElementById(id);
const FIELDS = ["model", "weights", "kv_cache", "batch", "prompt", "context", "gen", "tp", "pp", "engine"];
const fmt = (x, d = 1) => (x === null || x === undefined ? "-" : Number(x).toLocaleString("en-US",
  { minimumFractionDigits: d, maximumFractionDigits: d }));

function option(select, value, text) {
  const o = document.createElement("option"); o.value = value; o.textContent = text || value; select.appendChild(o);
}

function state() {
  const args = {};
  for (const f of FIELDS) { const v = $(f).value; if (v !== "") args[f] = v; }
  const devices = [...$("hardware").selectedOptions].map((o) => o.value);
  args.hardware = devices.length ? devices.join(",") : "h100";
  return args;
}

function toUrl(args) {
  const q = new URLSearchParams(args);
  history.replaceState(null, "", "?" + q.toString());
}

function fromUrl() {
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.has(f)) $(f).value = q.get(f);
  const devices = (q.get("hardware") || "h100").split(",");
  for (const o of $("hardware").options) o.selected = devices.includes(o.value) || devices.includes(o.dataset.alias);
}

async function api(path, args) {
  const config = $("config").value.trim();
  let response;
  if (config) {
    let parsed;
    try { parsed = JSON.parse(config); } catch (e) { throw new Error("the pasted config is not valid JSON"); }
    response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...args, config: parsed }) });
  } else {
    response = await fetch(path + "?" + new URLSearchParams(args).toString());
  }
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function table(el, header, rows) {
  el.replaceChildren();
  const tr = document.createElement("tr");
  for (const h of header) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
  el.appendChild(tr);
  for (const r of rows) {
    const row = document.createElement("tr");
    for (const c of r) { const td = document.createElement("td"); td.textContent = c; row.appendChild(td); }
    el.appendChild(row);
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function loglog(el, series, xlabel, ylabel) {
  // series: [{name, points: [[x, y]...], line: bool}]
  const W = 620, H = 300, L = 50, B = 30;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  el.replaceChildren();
  if (!all.length) return;
  const lx = all.map(([x]) => Math.log10(x)), ly = all.map(([, y]) => Math.log10(y));
  const [x0, x1] = [Math.min(...lx) - 0.2, Math.max(...lx) + 0.2], [y0, y1] = [Math.min(...ly) - 0.2, Math.max(...ly) + 0.2];
  const X = (x) => L + (Math.log10(x) - x0) / (x1 - x0) * (W - L - 10);
  const Y = (y) => H - B - (Math.log10(y) - y0) / (y1 - y0) * (H - B - 10);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.appendChild(svgEl("rect", { x: L, y: 10, width: W - L - 10, height: H - B - 10, fill: "none", stroke: "#999" }));
  for (let e = Math.ceil(x0); e <= Math.floor(x1); e++) {
    svg.appendChild(svgEl("text", { x: X(10 ** e), y: H - B + 12, "text-anchor": "middle" }, `${10 ** e}`));
  }
  for (let e = Math.ceil(y0); e <= Math.floor(y1); e++) {
    svg.appendChild(svgEl("text", { x: L - 4, y: Y(10 ** e) + 3, "text-anchor": "end" }, `${10 ** e}`));
  }
  svg.appendChild(svgEl("text", { x: W / 2, y: H - 5, "text-anchor": "middle" }, xlabel));
  svg.appendChild(svgEl("text", { x: 12, y: H / 2, transform: `rotate(-90 12 ${H / 2})`, "text-anchor": "middle" }, ylabel));
  const colors = ["#2a6fdb", "#d9822b", "#2f9e44", "#c92a2a", "#7048e8", "#0b7285"];
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const pts = s.points.filter(([x, y]) => x > 0 && y > 0);
    if (s.line) svg.appendChild(svgEl("polyline", { points: pts.map(([x, y]) => `${X(x)},${Y(y)}`).join(" "),
      fill: "none", stroke: c, "stroke-width": 1.5 }));
    else for (const [x, y] of pts) svg.appendChild(svgEl("circle", { cx: X(x), cy: Y(y), r: 3, fill: c }));
    svg.appendChild(svgEl("text", { x: L + 8, y: 24 + 12 * i, fill: c }, s.name));
  });
  el.appendChild(svg);
}

function show(p) {
  const d = p.decode, f = p.prefill, m = p.memory;
  $("title").textContent = `${p.model.id} on ${p.hardware.name} (${p.workload.weights})`;
  $("decode-ceiling").textContent = fmt(d.ceiling_tok_s);
  $("decode-estimate").textContent = fmt(d.estimate_tok_s);
  $("decode-range").textContent = `${fmt(d.estimate_low_tok_s)} - ${fmt(d.estimate_high_tok_s)}`;
  $("batch-ceiling").textContent = fmt(d.ceiling_throughput_tok_s);
  $("batch-estimate").textContent = fmt(d.estimate_throughput_tok_s);
  $("tpot-floor").textContent = fmt(d.tpot_floor_ms, 2);
  $("tpot").textContent = fmt(d.tpot_ms, 2);
  $("ttft-floor").textContent = fmt(f.ttft_floor_ms);
  $("ttft").textContent = fmt(f.ttft_ms);
  $("ttft-range").textContent = `${fmt(f.ttft_low_ms)} - ${fmt(f.ttft_high_ms)}`;
  const capacity = m.capacity_gb * 1.073741824;
  $("memory-bar").style.width = Math.min(100, 100 * m.total_gb / capacity) + "%";
  $("memory-bar").className = m.fits ? "" : "over";
  $("memory-text").textContent = `memory ${fmt(m.total_gb)} GB of ${fmt(m.capacity_gb, 0)} GiB: ` +
    (m.fits ? "fits" : `does not fit (needs ${m.min_devices || ">4096"} devices)`);
  const ops = p.operators.filter((o) => o.phase === "decode");
  table($("operators"), ["operator", "n", "GFLOP", "weight MB", "KV MB", "FLOP/B", "ceil ms", "est ms", "bound"],
    ops.map((o) => [o.name, o.count, fmt(o.flops / 1e9), fmt(o.weight_bytes / 1e6, 0), fmt(o.kv_bytes / 1e6),
      o.intensity_flop_per_byte === null ? "-" : fmt(o.intensity_flop_per_byte), fmt(o.ceiling_ms, 3),
      fmt(o.estimate_ms, 3), o.bound]));
  $("explain").textContent = (p.explain || []).join("\n") + "\n" + p.notes.map((n) => "note: " + n).join("\n");
  const hw = p.hardware, bw = hw.bandwidth_gbps * 1e9, peak = (hw.matmul_tflops || 0) * 1e12;
  const xs = [0.1, 1, 10, 100, 1000, 10000];
  if (peak) xs.push(peak / bw);  // the ridge point, where the two roofs meet
  xs.sort((a, b) => a - b);
  const roof = xs.map((x) => [x, peak ? Math.min(peak, bw * x) / 1e12 : bw * x / 1e12]);
  const points = p.operators.filter((o) => o.intensity_flop_per_byte > 0 && o.ceiling_ms > 0)
    .map((o) => [o.intensity_flop_per_byte, o.flops / (o.ceiling_ms / 1e3) / 1e12]);
  loglog($("roofline"), [{ name: "roof (TFLOPS)", points: roof, line: true }, { name: "operators", points }],
    "arithmetic intensity (FLOP/byte)", "TFLOPS");
}

async function update() {
  const args = state();
  toUrl(args);
  $("error").textContent = "";
  try {
    const p = await api("/api/predict", args);
    show(p);
    const rows = await api("/api/compare", args);
    table($("compare"), ["device", "tok/s ceiling", "tok/s estimate", "TTFT ms", "GB", "fits"],
      rows.map((r) => [r.hardware.name, fmt(r.decode.ceiling_tok_s), fmt(r.decode.estimate_tok_s),
        fmt(r.prefill.ttft_ms), fmt(r.memory.total_gb), r.memory.fits ? "yes" : "no"]));
    const s = await api("/api/sweep", { ...args, hardware: args.hardware.split(",")[0] });
    const pts = s.estimate_tok_s.map((u, i) => [u, s.throughput_per_device_tok_s[i]]).filter((_, i) => s.fits[i]);
    loglog($("sweep"), [{ name: `${s.hardware} ${s.weights}, batch ${s.batch[0]}-${s.batch[s.batch.length - 1]}`,
      points: pts, line: true }], "tok/s per user", "tok/s per device");
    document.body.dataset.ready = "1";
  } catch (e) {
    $("error").textContent = e.message;
    document.body.dataset.ready = "error";
  }
}

let timer = null;
function later() { document.body.dataset.ready = "0"; clearTimeout(timer); timer = setTimeout(update, 250); }

async function init() {
  const cat = await (await fetch("/api/catalog")).json();
  for (const m of cat.models) option($("model"), m);
  for (const h of cat.hardware) { option($("hardware"), h.id, h.name); $("hardware").lastChild.dataset.alias = h.alias; }
  for (const f of cat.formats) option($("weights"), f);
  for (const e of cat.engines) option($("engine"), e);
  $("model").value = "llama-3.1-8b";
  fromUrl();
  for (const f of [...FIELDS, "hardware", "config"]) $(f).addEventListener("input", later);
  $("hardware").addEventListener("change", later);
  update();
}
init();
