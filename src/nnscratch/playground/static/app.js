// nnscratch playground: the page. The engine runs in Python (the server); this file
// sends settings and commands over one WebSocket and draws what comes back.
"use strict";

const DATASETS = ["circle", "xor", "gauss", "spiral", "moons", "plane", "bumps"];
const REGRESSION = new Set(["plane", "bumps"]);
const FEATURES = ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"];
const ACTIVATIONS = ["tanh", "relu", "sigmoid", "leaky_relu", "identity"];
const RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const DROPOUTS = [0, 0.1, 0.2, 0.3, 0.5];
const MAX_LAYERS = 6, MAX_UNITS = 8;
const CLASS_COLORS = ["#f59322", "#0877bd", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const DEFAULTS = {
  dataset: "circle", noise: 0, train_ratio: 50, points: 500, seed: 1, features: ["x1", "x2"],
  layers: [{units: 4, activation: "tanh"}, {units: 2, activation: "tanh"}],
  learning_rate: 0.03, optimizer: "sgd", schedule: "constant", batch_size: 10,
  regularization: "none", reg_rate: 0, dropout: 0,
};

// ---- state ------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const page = {show_test: false, discretize: false};
let settings = readURL();
let data = null, frame = null, playing = false, curve = [], csvName = null;
const stats = {frames: 0, drawn: 0, errors: [], lastExplain: null, lastExport: null};
window.playground = {stats, get settings() { return settings; }, get frame() { return frame; }, send};

// ---- the URL holds the whole setup ------------------------------------------
function readURL() {
  const s = JSON.parse(JSON.stringify(DEFAULTS));
  const q = new URLSearchParams(location.hash.slice(1));
  for (const [key, value] of q) {
    if (key === "features") s.features = value ? value.split(",") : [];
    else if (key === "layers") s.layers = value ? value.split(",").map((part) => {
      const [units, activation] = part.split(":");
      return {units: Number(units), activation};
    }) : [];
    else if (key === "show_test" || key === "discretize") page[key] = value === "1";
    else if (["dataset", "optimizer", "schedule", "regularization"].includes(key)) s[key] = value;
    else if (key in DEFAULTS) s[key] = Number(value);
  }
  return s;
}

function writeURL() {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(settings)) {
    if (key === "features") q.set(key, value.join(","));
    else if (key === "layers") q.set(key, value.map((l) => `${l.units}:${l.activation}`).join(","));
    else q.set(key, String(value));
  }
  q.set("show_test", page.show_test ? "1" : "0");
  q.set("discretize", page.discretize ? "1" : "0");
  history.replaceState(null, "", "#" + q.toString());
}

// ---- the connection ---------------------------------------------------------
const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
function send(message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}
socket.onopen = () => pushSettings();
// A server that refuses the page (too many pages: code 1013) has said why; keep its words.
socket.onclose = (event) => {
  if (event.code !== 1013) showError("The connection to the playground server closed. Restart `nnscratch playground` and reload.");
};
socket.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m.type === "data") onData(m);
  else if (m.type === "frame") onFrame(m);
  else if (m.type === "explain") onExplain(m);
  else if (m.type === "export") onExport(m);
  else if (m.type === "paused") setPlaying(false);
  else if (m.type === "stopped") { setPlaying(false); showError(m.message); }
  else if (m.type === "error") showError(m.message);
};

function pushSettings() {
  showError("");
  writeURL();
  send({type: "settings", settings: settings.dataset === "csv" && !csvName ? {...settings, dataset: "circle"} : settings});
}

function showError(text) {
  $("error").textContent = text;
  if (text) stats.errors.push(text);
}

// ---- colours ---------------------------------------------------------------
function hex(c) { return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)); }
const NEG = hex("#f59322"), POS = hex("#0877bd"), WHITE = [255, 255, 255];
const LUT = new Uint8ClampedArray(256 * 3);
for (let i = 0; i < 256; i++) {  // byte 0..255 = value -1..1: orange, white, blue
  const t = i / 127.5 - 1, end = t < 0 ? NEG : POS, k = Math.abs(t);
  for (let c = 0; c < 3; c++) LUT[i * 3 + c] = WHITE[c] + (end[c] - WHITE[c]) * k;
}
function bytes(b64) {
  const text = atob(b64), out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
function paint(canvas, size, pixel) {  // pixel(i) -> [r, g, b]
  canvas.width = size; canvas.height = size;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = pixel(i);
    img.data[i * 4] = r; img.data[i * 4 + 1] = g; img.data[i * 4 + 2] = b; img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
function paintValues(canvas, size, b64, discrete) {
  const v = bytes(b64);
  paint(canvas, size, (i) => {
    const k = discrete ? (v[i] >= 128 ? 255 : 0) : v[i];
    return [LUT[k * 3], LUT[k * 3 + 1], LUT[k * 3 + 2]];
  });
}
function valueColor(v) {  // v in [-1, 1]
  const k = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
  return `rgb(${LUT[k * 3]},${LUT[k * 3 + 1]},${LUT[k * 3 + 2]})`;
}
function classColor(label) {
  if (data && data.problem === "classification" && data.classes.length === 2) return label === 1 ? "#0877bd" : "#f59322";
  return CLASS_COLORS[label % CLASS_COLORS.length];
}

// ---- controls ----------------------------------------------------------------
function fillSelect(id, values, fmt) {
  $(id).innerHTML = values.map((v) => `<option value="${v}">${fmt ? fmt(v) : v}</option>`).join("");
}
fillSelect("learning_rate", RATES);
fillSelect("reg_rate", REG_RATES);
fillSelect("dropout", DROPOUTS);

function buildDatasetButtons() {
  $("datasets").innerHTML = "";
  for (const name of DATASETS) {
    const button = document.createElement("button");
    button.dataset.name = name;
    button.title = name;
    button.innerHTML = `<canvas width="30" height="30"></canvas><span>${name}</span>`;
    button.onclick = () => { settings.dataset = name; csvName = null; pushSettings(); };
    $("datasets").appendChild(button);
    drawThumbnail(button.querySelector("canvas"), name);
  }
}
function drawThumbnail(canvas, name) {  // a hint of each set's shape
  const f = {
    circle: (x, y) => Math.hypot(x, y) < 0.5 ? 1 : -1, xor: (x, y) => x * y >= 0 ? 1 : -1,
    gauss: (x, y) => x + y > 0 ? 1 : -1, spiral: (x, y) => Math.sin(3 * Math.hypot(x, y) * 3 - Math.atan2(y, x)) > 0 ? 1 : -1,
    moons: (x, y) => (y > 0.3 * Math.cos(3 * x)) ? -1 : 1, plane: (x, y) => (x + y) / 2,
    bumps: (x, y) => Math.sin(4 * x) * Math.cos(3 * y),
  }[name];
  paint(canvas, 30, (i) => {
    const x = (i % 30) / 15 - 1, y = 1 - Math.floor(i / 30) / 15;
    const k = Math.round((f(x, y) + 1) * 127.5 * 0.6 + 51);
    return [LUT[k * 3], LUT[k * 3 + 1], LUT[k * 3 + 2]];
  });
}

function syncControls() {
  for (const b of $("datasets").children) b.classList.toggle("selected", b.dataset.name === settings.dataset);
  for (const id of ["learning_rate", "optimizer", "schedule", "regularization", "reg_rate", "dropout"]) $(id).value = String(settings[id]);
  for (const id of ["train_ratio", "noise", "batch_size"]) {
    $(id).value = settings[id];
    $(id + "_out").textContent = settings[id];
  }
  $("show_test").checked = page.show_test;
  $("discretize").checked = page.discretize;
  const n = settings.layers.length;
  $("layers-title").textContent = `${n} hidden layer${n === 1 ? "" : "s"}`;
  $("problem").textContent = data ? data.problem : (REGRESSION.has(settings.dataset) ? "regression" : "classification");
}

for (const id of ["learning_rate", "reg_rate", "dropout"]) $(id).onchange = () => { settings[id] = Number($(id).value); pushSettings(); };
for (const id of ["optimizer", "schedule", "regularization"]) $(id).onchange = () => { settings[id] = $(id).value; pushSettings(); };
for (const id of ["train_ratio", "noise", "batch_size"]) {
  $(id).oninput = () => { $(id + "_out").textContent = $(id).value; };
  $(id).onchange = () => { settings[id] = Number($(id).value); pushSettings(); };
}
$("show_test").onchange = () => { page.show_test = $("show_test").checked; writeURL(); drawOutput(); };
$("discretize").onchange = () => { page.discretize = $("discretize").checked; writeURL(); drawOutput(); };
$("regenerate").onclick = () => { settings.seed = (settings.seed + 1) % 2147483647; pushSettings(); };
$("play").onclick = () => { send({type: playing ? "pause" : "play"}); setPlaying(!playing); };
$("step").onclick = () => { setPlaying(false); send({type: "step"}); };
$("reset").onclick = () => { setPlaying(false); send({type: "reset"}); };
$("add-layer").onclick = () => {
  if (settings.layers.length < MAX_LAYERS) { settings.layers.push({units: 2, activation: "tanh"}); pushSettings(); }
};
$("remove-layer").onclick = () => { if (settings.layers.length) { settings.layers.pop(); pushSettings(); } };
$("csv").onchange = async () => {
  const file = $("csv").files[0];
  if (!file) return;
  if (file.size > 1000000) { showError(`${file.name} is ${file.size.toLocaleString()} bytes; the playground takes CSV files up to 1,000,000 bytes.`); return; }
  csvName = file.name;
  setPlaying(false);
  send({type: "csv", text: await file.text()});
};
$("export-model").onclick = () => { stats.pendingExport = "model"; send({type: "export"}); };
$("export-code").onclick = () => { stats.pendingExport = "code"; send({type: "export"}); };
$("output").onclick = (event) => {
  if (!data) return;
  const rect = $("output").getBoundingClientRect(), r = data.range;
  const x1 = ((event.clientX - rect.left) / rect.width) * 2 * r - r;
  const x2 = r - ((event.clientY - rect.top) / rect.height) * 2 * r;
  setPlaying(false);
  send({type: "pause"});
  send({type: "explain", x1, x2});
};

function setPlaying(on) {
  playing = on;
  $("play").classList.toggle("playing", on);
  $("play").innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
}

// ---- the network diagram -------------------------------------------------------
function buildNetwork() {
  const features = $("features");
  features.innerHTML = '<div class="layer-controls"></div>';
  for (const name of FEATURES) {
    const on = settings.features.includes(name);
    const node = document.createElement("div");
    node.className = "node feature" + (on ? "" : " off");
    node.innerHTML = `<label>${name}</label><canvas id="feature-${CSS.escape(name)}" width="40" height="40"></canvas>`;
    node.title = on ? `${name}: an input (click to remove)` : `${name}: click to use as an input`;
    node.onclick = () => {
      const next = on ? settings.features.filter((f) => f !== name) : [...settings.features, name];
      if (!next.length) { showError("Keep at least one input feature."); return; }
      settings.features = FEATURES.filter((f) => next.includes(f));
      pushSettings();
    };
    features.appendChild(node);
  }
  const hidden = $("hidden");
  hidden.innerHTML = "";
  settings.layers.forEach((layer, i) => {
    const column = document.createElement("div");
    column.className = "layer";
    const options = ACTIVATIONS.map((a) => `<option ${a === layer.activation ? "selected" : ""}>${a}</option>`).join("");
    column.innerHTML = `<div class="layer-controls"><div><button data-d="1" title="Add a neuron">+</button>
      <button data-d="-1" title="Remove a neuron">&minus;</button></div>
      <span>${layer.units} neuron${layer.units > 1 ? "s" : ""}</span><select title="Activation of layer ${i + 1}">${options}</select></div>`;
    for (const button of column.querySelectorAll("button")) {
      button.onclick = () => {
        const units = layer.units + Number(button.dataset.d);
        if (units >= 1 && units <= MAX_UNITS) { layer.units = units; pushSettings(); }
      };
    }
    column.querySelector("select").onchange = (e) => { layer.activation = e.target.value; pushSettings(); };
    for (let j = 0; j < layer.units; j++) {
      const node = document.createElement("div");
      node.className = "node";
      node.innerHTML = `<canvas class="neuron" id="neuron-${i}-${j}" width="40" height="40"></canvas>`;
      column.appendChild(node);
    }
    hidden.appendChild(column);
  });
}

function nodeCentre(el, box) {
  const r = el.getBoundingClientRect();
  return [r.left - box.left + r.width / 2, r.top - box.top + r.height / 2, r];
}

function drawLinks() {
  const svg = $("links"), box = $("network").getBoundingClientRect();
  svg.innerHTML = "";
  if (!frame) return;
  const sources = [settings.features.map((f) => $(`feature-${CSS.escape(f)}`))];
  settings.layers.forEach((layer, i) => sources.push([...Array(layer.units).keys()].map((j) => $(`neuron-${i}-${j}`))));
  const output = $("output");
  const targets = [...sources.slice(1), [output]];
  const ns = "http://www.w3.org/2000/svg";
  frame.weights.forEach((W, l) => {
    W.forEach((row, a) => row.forEach((w, b) => {
      const from = sources[l][a], to = targets[l][Math.min(b, targets[l].length - 1)];
      if (!from || !to) return;
      const [x1, y1, r1] = nodeCentre(from, box);
      let [x2, y2] = nodeCentre(to, box);
      if (to === output) { x2 = box.width + 4; y2 = y1 * 0 + (box.height / 2); }
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", x1 + r1.width / 2); line.setAttribute("y1", y1);
      line.setAttribute("x2", to === output ? x2 : x2 - r1.width / 2); line.setAttribute("y2", y2);
      line.setAttribute("stroke", w < 0 ? "#f59322" : "#0877bd");
      line.setAttribute("stroke-width", Math.min(6, 0.4 + Math.abs(w) * 1.5).toFixed(2));
      line.setAttribute("stroke-opacity", "0.7");
      const title = document.createElementNS(ns, "title");
      title.textContent = `weight ${w.toFixed(5)} (layer ${l + 1}, from ${l === 0 ? settings.features[a] : "neuron " + (a + 1)} to ${l === frame.weights.length - 1 ? "output " + (b + 1) : "neuron " + (b + 1)})`;
      line.appendChild(title);
      svg.appendChild(line);
    }));
  });
}

// ---- messages ------------------------------------------------------------------
function onData(m) {
  data = m;
  // New data or a new network: an explanation of the old one (and its ring on the output) would mislead.
  stats.lastExplain = null;
  $("explain-body").innerHTML = "";
  if (m.settings.dataset === "csv") settings = {...m.settings};
  curve = [];
  buildNetwork();
  syncControls();
  for (const [name, b64] of Object.entries(m.features)) paintValues($(`feature-${CSS.escape(name)}`), m.grid, b64, false);
  $("legend").innerHTML = m.problem === "regression"
    ? `<span><i style="background:${valueColor(-1)}"></i>-1</span><span><i style="background:#fff"></i>0</span><span><i style="background:${valueColor(1)}"></i>+1</span>`
    : m.classes.map((c, k) => `<span><i style="background:${classColor(k)}"></i>${c}</span>`).join("");
  writeURL();
}

function onFrame(m) {
  frame = m;
  stats.frames++;
  if (m.epoch === 0) curve = [];
  curve.push(m.curve);
  if (curve.length > 1000) curve.shift();
  requestAnimationFrame(draw);
}

let drawPending = false;
function draw() {
  if (drawPending) return;
  drawPending = true;
  try {
    $("epoch").textContent = String(frame.epoch).padStart(6, "0").replace(/(\d{3})(\d{3})$/, "$1,$2");
    const fmt = (v) => v === null ? "-" : v.toFixed(3);
    $("train-loss").textContent = fmt(frame.curve[0]);
    $("test-loss").textContent = fmt(frame.curve[1]);
    frame.neurons.forEach((layer, i) => layer.forEach((b64, j) => {
      const canvas = $(`neuron-${i}-${j}`);
      if (!canvas) return;
      paintValues(canvas, data.grid, b64, false);
      const W = frame.weights[i], bias = frame.biases[i][j];
      canvas.title = `layer ${i + 1}, neuron ${j + 1}: bias ${bias.toFixed(5)}; weights in ${W.map((row) => row[j].toFixed(4)).join(", ")}`;
    }));
    drawOutput();
    drawChart();
    drawLinks();
    stats.drawn++;
  } finally {
    drawPending = false;
  }
}

function drawOutput() {
  if (!frame || !data) return;
  const canvas = $("output"), size = data.output_grid, s = frame.surface;
  const image = document.createElement("canvas");
  if (s.kind === "classes") {
    const labels = bytes(s.labels), conf = bytes(s.values);
    paint(image, size, (i) => {
      const c = hex(classColor(labels[i])), k = page.discretize ? 0.75 : Math.max(0, (conf[i] / 255 - 1 / data.classes.length)) * 0.9;
      return c.map((v, n) => WHITE[n] + (v - WHITE[n]) * k);
    });
  } else {
    const v = bytes(s.values);
    paint(image, size, (i) => {
      let k = v[i];
      if (page.discretize) k = k >= 128 ? 230 : 25;
      else k = Math.round(127.5 + (k - 127.5) * 0.85);
      return [LUT[k * 3], LUT[k * 3 + 1], LUT[k * 3 + 2]];
    });
  }
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, r = data.range;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(image, 0, 0, w, h);
  const dot = (x, y, label, test) => {
    const px = ((x + r) / (2 * r)) * w, py = ((r - y) / (2 * r)) * h;
    ctx.beginPath();
    ctx.arc(px, py, 3.6, 0, 2 * Math.PI);
    ctx.fillStyle = data.problem === "regression" ? valueColor(label) : classColor(label);
    ctx.fill();
    ctx.lineWidth = test ? 1.6 : 0.9;
    ctx.strokeStyle = test ? "#000" : "#fff";
    ctx.stroke();
  };
  data.train.x.forEach((p, i) => dot(p[0], p[1], data.train.y[i], false));
  if (page.show_test) data.test.x.forEach((p, i) => dot(p[0], p[1], data.test.y[i], true));
  if (stats.lastExplain) {
    const [x, y] = stats.lastExplain.point;
    ctx.beginPath();
    ctx.arc(((x + r) / (2 * r)) * w, ((r - y) / (2 * r)) * h, 7, 0, 2 * Math.PI);
    ctx.lineWidth = 2; ctx.strokeStyle = "#222"; ctx.stroke();
  }
}

function drawChart() {
  const canvas = $("chart"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const values = curve.flat().filter((v) => v !== null && isFinite(v));
  if (curve.length < 2 || !values.length) return;
  const top = Math.max(...values) * 1.05 || 1;
  [[0, "#999"], [1, "#222"]].forEach(([k, colour]) => {
    ctx.beginPath();
    curve.forEach((c, i) => {
      if (c[k] === null) return;
      const x = (i / (curve.length - 1)) * w, y = h - (c[k] / top) * (h - 4) - 2;
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.stroke();
  });
}

// ---- explain and export ----------------------------------------------------------
function cell(value) {
  if (value === null || value === undefined) return '<td class="none">&ndash;</td>';
  if (Array.isArray(value)) {
    const rows = Array.isArray(value[0]) ? value : [value];
    const text = rows.map((row) => row.map((v) => v.toPrecision(5).padStart(11)).join(" ")).join("\n");
    return `<td class="matrix" data-v='${JSON.stringify(value)}'>${text}</td>`;
  }
  return `<td data-v="${value}">${Number(value).toPrecision(6)}</td>`;
}

function onExplain(m) {
  stats.lastExplain = m;
  const rows = [["z", "z = a_in W + b"], ["a", "a = f(z)"], ["dC_da", "dC/da"], ["dC_dz", "dC/dz = dC/da * f'(z)"],
    ["dC_db", "dC/db = dC/dz"], ["dC_dW", "dC/dW = a_in^T dC/dz"], ["W", "W before"], ["W_updated", "W - lr dC/dW"],
    ["b", "b before"], ["b_updated", "b - lr dC/db"]];
  let html = `<p class="summary">Training point (${m.point.map((v) => v.toFixed(3)).join(", ")}), target ${JSON.stringify(m.target)},
    inputs x = [${m.x.map((v) => v.toFixed(4)).join(", ")}]. One gradient-descent step with learning rate ${m.learning_rate}:
    cost <b id="explain-cost" data-v="${m.cost}">${m.cost.toPrecision(6)}</b> &rarr;
    <b id="explain-cost-updated" data-v="${m.cost_updated}">${m.cost_updated.toPrecision(6)}</b> (${m.loss}).
    The last layer's dC/dz is the fused gradient output &minus; target when the loss absorbs its activation.</p>`;
  m.layers.forEach((layer, i) => {
    html += `<table class="explain-layer" data-layer="${i}"><caption>Layer ${i + 1} (${layer.activation})</caption>`;
    for (const [key, label] of rows) {
      const shown = key === "dC_dz" && layer.dC_da === null ? "dC/dz = a - y (the loss absorbs f)" : label;
      html += `<tr data-key="${key}"><th>${shown}</th>${cell(layer[key])}</tr>`;
    }
    html += "</table>";
  });
  $("explain-body").innerHTML = html;
  drawOutput();
  $("explain").scrollIntoView({behavior: "smooth", block: "start"});  // it opens below the fold on small windows
}

function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function onExport(m) {
  stats.lastExport = m;
  if (stats.pendingExport === "code") download("playground.py", new Blob([m.code], {type: "text/x-python"}));
  else download("playground.safetensors", new Blob([bytes(m.model)], {type: "application/octet-stream"}));
}

buildDatasetButtons();
buildNetwork();
syncControls();
window.addEventListener("resize", () => frame && drawLinks());
