// aipipe dashboard (control-plane/README.md, "Dashboard"). Plain script, no
// build step. Everything it shows comes from the control plane's own admin
// JSON API, called with the admin secret the operator typed in; the secret
// lives in this tab's sessionStorage only, is sent only as the X-Admin-Secret
// header to this origin, and is never put in a URL, a cookie, the page or
// the console.
"use strict";

(() => {
  const SECRET_KEY = "aipipe.adminSecret";
  const REFRESH_MS = 5000;
  const TENANTS_EVERY_MS = 60 * 1000;
  // Key budgets read per refresh: the first ones of a tenant's keys that have one.
  const KEY_BUDGETS_SHOWN = 12;
  const MINUTE = 60 * 1000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  // Buckets of the over-time charts, per window (whole minutes).
  const STEPS = new Map([
    [15 * MINUTE, MINUTE],
    [HOUR, MINUTE],
    [DAY, 20 * MINUTE],
    [7 * DAY, 3 * HOUR],
    [30 * DAY, 12 * HOUR],
    [90 * DAY, DAY],
  ]);
  // The classifier's tiers (control-plane/README.md, "Stats").
  const BANDS = ["cheap", "mid", "frontier", "unscored"];
  const BAND_COLORS = { cheap: "#3fb950", mid: "#d29922", frontier: "#f85149", unscored: "#6e7681" };
  const PALETTE = ["#5b9cff", "#3fb950", "#d29922", "#f778ba", "#a371f7", "#39c5cf", "#ff7b72",
    "#e3b341", "#79c0ff", "#56d364", "#8b98a9", "#ffa657"];
  const COLORS = { text: "#e6edf3", muted: "#8b98a9", line: "#263041", accent: "#5b9cff", good: "#3fb950" };

  const $ = (id) => document.getElementById(id);
  const state = { windowMs: HOUR, tenant: "", tenants: [], tenantsAt: 0, tenantsFor: null, timer: null, seq: 0, refreshes: 0 };
  const charts = new Map();

  // ---- formatting ------------------------------------------------------------------

  const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  function fmtCount(n) {
    n = num(n);
    if (Math.abs(n) < 10000) return Math.round(n).toLocaleString("en-US");
    if (Math.abs(n) < 1e6) return (n / 1e3).toFixed(n < 1e5 ? 1 : 0) + "k";
    if (Math.abs(n) < 1e9) return (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + "M";
    return (n / 1e9).toFixed(2) + "B";
  }
  function fmtUsd(x) {
    x = num(x);
    if (x === 0) return "$0";
    const a = Math.abs(x);
    if (a < 0.0001) return "$" + x.toLocaleString("en-US", { maximumSignificantDigits: 2, maximumFractionDigits: 9 });
    if (a < 0.01) return "$" + x.toFixed(4);
    if (a < 1) return "$" + x.toFixed(3);
    if (a < 10000) return "$" + x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return "$" + fmtCount(x);
  }
  function fmtPct(r, digits = 1) {
    if (r === null || r === undefined || !Number.isFinite(r)) return "–";
    const p = r * 100;
    if (p > 99.9 && p < 100) return p.toFixed(2) + "%";
    if (p > 0 && p < 0.1) return "<0.1%";
    return p.toFixed(p === 100 || p === 0 ? 0 : digits) + "%";
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
    if (ms < 10) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  function fmtRate(perSecond) {
    if (perSecond === 0) return "0/s";
    if (perSecond < 0.1) return (perSecond * 60).toFixed(1) + "/min";
    return perSecond.toFixed(perSecond < 10 ? 2 : 1) + "/s";
  }
  function fmtAgo(ms) {
    if (!ms) return "never";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  // A time axis' tick: the time within a day, the date (and the time, unless
  // midnight) across days.
  function fmtTime(ms, windowMs) {
    const d = new Date(ms);
    const hm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
    if (windowMs <= DAY) return hm;
    const md = d.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
    const midnight = d.getHours() === 0 && d.getMinutes() === 0;
    return windowMs <= 7 * DAY && !midnight ? md + " " + hm : md;
  }

  // ---- the admin API ---------------------------------------------------------------

  class AuthError extends Error {}
  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // GET `path` with the secret; resolves to {status, body} for 200 and 404
  // (no such tenant, or an endpoint this control plane lacks: the caller
  // shows an empty state). 401 throws AuthError, any other status HttpError.
  async function get(path, secret = sessionStorage.getItem(SECRET_KEY)) {
    const r = await fetch(path, {
      headers: { "X-Admin-Secret": secret || "" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = null;
    }
    if (r.status === 401) throw new AuthError("wrong admin secret");
    if (r.status === 429) {
      const wait = r.headers.get("retry-after");
      throw new HttpError(429, `too many wrong admin secrets from this address: try again in ${wait || "a few"} s`);
    }
    if (r.status !== 200 && r.status !== 404) {
      const message = body && body.error && body.error.message;
      throw new HttpError(r.status, `${path.split("?")[0]} answered ${r.status}${message ? ": " + message : ""}`);
    }
    return { status: r.status, body };
  }
  const found = (r) => (r.status === 200 ? r.body : null);

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, String(v));
    return q.toString();
  }

  // The window's numbers: GET /admin/stats (tenant absent: every tenant).
  /** A tenant's live keys with a budget of their own, each with that budget. */
  async function fetchKeyBudgets(path) {
    const list = found(await get(`${path}/virtual-keys`));
    const keys = ((list && list.virtual_keys) || [])
      .filter((k) => k.budgeted && !k.revoked)
      .slice(0, KEY_BUDGETS_SHOWN);
    const budgets = await Promise.all(keys.map((k) =>
      get(`${path}/virtual-keys/${encodeURIComponent(k.id)}/budget`).then(found)));
    return keys.map((key, i) => ({ key, budget: budgets[i] })).filter((kb) => kb.budget);
  }
  const fetchStats = (tenant, since, until) => get(`/admin/stats?${query({ tenant, since, until })}`).then(found);
  // The window over time: GET /admin/stats/series, empty buckets as zeros.
  const fetchSeries = (tenant, since, until, step) =>
    get(`/admin/stats/series?${query({ tenant, since, until, step_ms: step })}`).then(found);

  // ---- charts ----------------------------------------------------------------------

  function setupChartDefaults() {
    const d = Chart.defaults;
    d.color = COLORS.muted;
    d.borderColor = COLORS.line;
    d.font.family = getComputedStyle(document.documentElement).fontFamily;
    d.font.size = 12;
    d.maintainAspectRatio = false;
    d.animation = false;
    d.plugins.legend.labels.boxWidth = 10;
    d.plugins.legend.labels.boxHeight = 10;
    d.plugins.tooltip.backgroundColor = "#0d1117";
    d.plugins.tooltip.borderColor = COLORS.line;
    d.plugins.tooltip.borderWidth = 1;
    d.plugins.tooltip.titleColor = COLORS.text;
    d.plugins.tooltip.bodyColor = COLORS.text;
    d.elements.bar.borderRadius = 3;
    d.elements.line.borderWidth = 2;
    d.elements.point.radius = 0;
    d.elements.point.hoverRadius = 4;
  }

  // Draws (or redraws in place) the chart on canvas `id`; `empty`: show the
  // card's empty state over it.
  function draw(id, config, empty) {
    const canvas = $(id);
    canvas.parentElement.querySelector(".empty").hidden = !empty;
    let chart = charts.get(id);
    if (!chart) {
      chart = new Chart(canvas, config);
      charts.set(id, chart);
      return;
    }
    chart.data = config.data;
    chart.options = config.options;
    chart.update("none");
  }

  const axis = (extra) => Object.assign({ grid: { color: COLORS.line }, border: { display: false } }, extra);

  // Ticks of a time axis at round times (every 5 min, every 6 h, at local
  // midnight...), at most 7 across the window.
  const TICK_STEPS = [MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
    3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
  function timeTicks(scale) {
    const span = scale.max - scale.min;
    const step = TICK_STEPS.find((s) => span / s <= 7) || 30 * DAY;
    let t;
    if (step >= DAY) {
      const d = new Date(scale.min);
      d.setHours(0, 0, 0, 0);
      t = d.getTime();
    } else {
      // Round in local time: shift by the zone's offset, floor, shift back.
      const offset = new Date(scale.min).getTimezoneOffset() * MINUTE;
      t = Math.floor((scale.min - offset) / step) * step + offset;
    }
    const ticks = [];
    for (; t <= scale.max; t += step) if (t >= scale.min) ticks.push({ value: t });
    scale.ticks = ticks;
  }
  const timeAxis = (series, windowMs) => axis({
    type: "linear", offset: false,
    min: series ? series.since : undefined, max: series ? series.until : undefined,
    afterBuildTicks: timeTicks,
    ticks: { callback: (v) => fmtTime(v, windowMs), maxRotation: 0 },
  });

  function drawTraffic(series, windowMs) {
    const step = num(series && series.step_ms) || 1;
    const pts = (series && series.points) || [];
    // Per second, or per minute when that reads better (under one a second).
    const peak = Math.max(0, ...pts.map((p) => num(p.requests) / (step / 1000)));
    const unit = peak < 1 ? { per: "min", ms: MINUTE } : { per: "s", ms: 1000 };
    const rate = pts.map((p) => ({ x: p.t + step / 2, y: num(p.requests) / (step / unit.ms) }));
    const fmt = (v) => `${v < 10 ? v.toFixed(v === 0 ? 0 : v < 1 ? 2 : 1) : fmtCount(v)}/${unit.per}`;
    const ok = pts.map((p) => ({ x: p.t + step / 2, y: p.requests ? (100 * (p.requests - p.errors)) / p.requests : null }));
    draw("chart-traffic", {
      type: "line",
      data: { datasets: [
        { label: `requests/${unit.per}`, data: rate, borderColor: COLORS.accent, backgroundColor: "rgba(91,156,255,.15)",
          fill: true, tension: 0.25, yAxisID: "y" },
        { label: "success rate", data: ok, borderColor: COLORS.good, spanGaps: true, tension: 0.25, yAxisID: "y1",
          pointRadius: 2 },
      ] },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: timeAxis(series, windowMs),
          y: axis({ beginAtZero: true, ticks: { callback: fmt } }),
          y1: axis({ position: "right", min: 0, max: 100, grid: { display: false }, ticks: { callback: (v) => v + "%" } }),
        },
        plugins: { tooltip: { callbacks: {
          title: (items) => (items.length ? "from " + new Date(pts[items[0].dataIndex].t).toLocaleString("en-GB") : ""),
          label: (c) => (c.datasetIndex === 0 ? ` ${fmt(c.parsed.y)}` : ` ${c.parsed.y.toFixed(1)}% succeeded`),
        } } },
      },
    }, !pts.some((p) => p.requests > 0));
  }

  function drawSpend(series, windowMs) {
    const pts = (series && series.points) || [];
    const mid = num(series && series.step_ms) / 2; // a bucket's value at its middle
    draw("chart-spend", {
      type: "bar",
      data: { datasets: [
        { type: "bar", label: "cost", data: pts.map((p) => ({ x: p.t + mid, y: num(p.cost_usd) })), backgroundColor: "#a371f7",
          yAxisID: "y", barPercentage: 1, categoryPercentage: 0.85, order: 2 },
        { type: "line", label: "tokens", data: pts.map((p) => ({ x: p.t + mid, y: num(p.prompt_tokens) + num(p.completion_tokens) })),
          borderColor: "#39c5cf", tension: 0.25, yAxisID: "y1", order: 1 },
      ] },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: timeAxis(series, windowMs),
          y: axis({ beginAtZero: true, ticks: { callback: (v) => fmtUsd(v) } }),
          y1: axis({ position: "right", beginAtZero: true, grid: { display: false }, ticks: { callback: (v) => fmtCount(v) } }),
        },
        plugins: { tooltip: { callbacks: {
          title: (items) => (items.length ? "from " + new Date(pts[items[0].dataIndex].t).toLocaleString("en-GB") : ""),
          label: (c) => (c.datasetIndex === 0 ? ` cost ${fmtUsd(c.parsed.y)}` : ` ${fmtCount(c.parsed.y)} tokens`),
        } } },
      },
    }, !pts.some((p) => p.cost_usd > 0 || p.prompt_tokens > 0));
  }

  // A category axis whose labels stay level: long names are cut (the
  // tooltip has them whole).
  const modelAxis = (extra) => axis(Object.assign({
    grid: { display: false },
    ticks: {
      maxRotation: 0, autoSkip: false,
      callback(value) {
        const label = String(this.getLabelForValue(value));
        const room = Math.max(8, Math.floor((0.85 * this.chart.width) / Math.max(1, this.ticks.length) / 7));
        return label.length > room ? label.slice(0, room - 1) + "…" : label;
      },
    },
  }, extra));

  // Model labels: the model's name, with its provider when two providers serve it.
  function modelLabels(models) {
    const count = new Map();
    for (const m of models) count.set(m.model, (count.get(m.model) || 0) + 1);
    return models.map((m) => (count.get(m.model) > 1 ? `${m.model} (${m.provider})` : m.model));
  }

  function drawProviderCost(stats) {
    const byProvider = new Map();
    for (const m of (stats && stats.by_model) || []) byProvider.set(m.provider, num(byProvider.get(m.provider)) + num(m.cost_usd));
    const rows = [...byProvider].filter(([, c]) => c > 0).sort((a, b) => b[1] - a[1]);
    draw("chart-provider-cost", {
      type: "doughnut",
      data: { labels: rows.map((r) => r[0]), datasets: [{ data: rows.map((r) => r[1]), backgroundColor: PALETTE,
        borderColor: "#151b24", borderWidth: 2 }] },
      options: {
        cutout: "62%",
        plugins: {
          legend: { position: "right" },
          tooltip: { callbacks: { label: (c) => ` ${c.label}: ${fmtUsd(c.parsed)}` } },
        },
      },
    }, rows.length === 0);
  }

  function drawModelCost(stats) {
    const models = ((stats && stats.by_model) || []).filter((m) => m.requests > 0 || m.cost_usd > 0)
      .sort((a, b) => num(b.cost_usd) - num(a.cost_usd) || b.requests - a.requests).slice(0, 12);
    draw("chart-model-cost", {
      type: "bar",
      data: { labels: modelLabels(models), datasets: [
        { label: "cost", data: models.map((m) => num(m.cost_usd)), backgroundColor: "#a371f7", yAxisID: "y", stack: "cost" },
        { label: "prompt tokens", data: models.map((m) => num(m.prompt_tokens)), backgroundColor: "#39c5cf", yAxisID: "y1", stack: "tokens" },
        { label: "completion tokens", data: models.map((m) => num(m.completion_tokens)), backgroundColor: "#1f6feb", yAxisID: "y1", stack: "tokens" },
      ] },
      options: {
        scales: {
          x: modelAxis({ stacked: true }),
          y: axis({ beginAtZero: true, ticks: { callback: (v) => fmtUsd(v) } }),
          y1: axis({ stacked: true, position: "right", beginAtZero: true, grid: { display: false }, ticks: { callback: (v) => fmtCount(v) } }),
        },
        plugins: { tooltip: { callbacks: {
          afterTitle: (items) => (items.length ? `${models[items[0].dataIndex].provider} · ${fmtCount(models[items[0].dataIndex].requests)} requests` : ""),
          label: (c) => (c.datasetIndex === 0 ? ` cost ${fmtUsd(c.parsed.y)}` : ` ${c.dataset.label} ${fmtCount(c.parsed.y)}`),
        } } },
      },
    }, models.length === 0);
  }

  function drawPercentiles(id, stats, field) {
    const models = ((stats && stats.by_model) || []).filter((m) => m[field] && m[field].p50 !== null && m[field].p50 !== undefined);
    const colors = { p50: "#5b9cff", p95: "#d29922", p99: "#f85149" };
    draw(id, {
      type: "bar",
      data: { labels: modelLabels(models), datasets: ["p50", "p95", "p99"].map((p) => ({
        label: p, data: models.map((m) => m[field][p]), backgroundColor: colors[p] })) },
      options: {
        scales: {
          x: modelAxis({}),
          y: axis({ beginAtZero: true, ticks: { callback: (v) => fmtMs(v) } }),
        },
        plugins: { tooltip: { callbacks: { label: (c) => ` ${c.dataset.label} ${fmtMs(c.parsed.y)}` } } },
      },
    }, models.length === 0);
  }

  function drawBands(stats) {
    const bands = stats && stats.totals && stats.totals.bands;
    const values = BANDS.map((b) => num(bands && bands[b]));
    const total = values.reduce((a, b) => a + b, 0);
    draw("chart-bands", {
      type: "doughnut",
      data: { labels: BANDS, datasets: [{ data: values, backgroundColor: BANDS.map((b) => BAND_COLORS[b]),
        borderColor: "#151b24", borderWidth: 2 }] },
      options: {
        cutout: "62%",
        plugins: {
          legend: { position: "right" },
          tooltip: { callbacks: { label: (c) => ` ${c.label}: ${fmtCount(c.parsed)} (${fmtPct(total ? c.parsed / total : null)})` } },
        },
      },
    }, total === 0);
  }

  function drawRouting(stats) {
    const models = ((stats && stats.by_model) || []).filter((m) => m.requests > 0)
      .sort((a, b) => b.requests - a.requests).slice(0, 12);
    const total = models.reduce((a, m) => a + m.requests, 0) || 1;
    const labels = modelLabels(models).map((l, i) => `${l}  ${fmtPct(models[i].requests / total, 0)}`);
    const withBands = models.some((m) => m.bands);
    const datasets = withBands
      ? BANDS.map((b) => ({ label: b, data: models.map((m) => num(m.bands && m.bands[b])), backgroundColor: BAND_COLORS[b] }))
      : [{ label: "requests", data: models.map((m) => m.requests), backgroundColor: COLORS.accent }];
    draw("chart-routing", {
      type: "bar",
      data: { labels, datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: axis({ stacked: true, beginAtZero: true, ticks: { callback: (v) => fmtCount(v) } }),
          y: axis({ stacked: true, grid: { display: false }, ticks: { color: COLORS.text } }),
        },
        plugins: { tooltip: { callbacks: { label: (c) => ` ${c.dataset.label}: ${fmtCount(c.parsed.x)} requests` } } },
      },
    }, models.length === 0);
  }

  // ---- tables and numbers ---------------------------------------------------------

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text;
    return td;
  }
  function pill(text, kind) {
    const s = document.createElement("span");
    s.className = "pill" + (kind ? " " + kind : "");
    s.textContent = text;
    return s;
  }
  function fillTable(id, rows) {
    const table = $(id);
    const body = table.tBodies[0];
    body.replaceChildren(...rows);
    table.hidden = rows.length === 0;
    table.parentElement.querySelector(".empty").hidden = rows.length > 0;
  }

  function renderPenalties(penalties, stats) {
    const inWindow = new Map();
    for (const m of (stats && stats.by_model) || []) inWindow.set(m.provider + "\u0000" + m.model, m);
    const rows = [];
    const seen = new Set();
    for (const p of (penalties && penalties.penalties) || []) {
      const key = p.provider + "\u0000" + p.model;
      seen.add(key);
      const w = inWindow.get(key);
      if (!(p.penalty > 0) && !(w && (w.failed_attempts > 0 || w.errors > 0))) continue;
      rows.push({ model: p.model, provider: p.provider, penalty: p.penalty, success: p.success_rate,
        failed: w ? w.failed_attempts : 0, errors: w ? w.errors : 0 });
    }
    for (const [key, w] of inWindow) {
      if (!seen.has(key) && (w.failed_attempts > 0 || w.errors > 0)) {
        rows.push({ model: w.model, provider: w.provider, penalty: 0, success: w.success_rate, failed: w.failed_attempts, errors: w.errors });
      }
    }
    rows.sort((a, b) => b.penalty - a.penalty || b.failed - a.failed || b.errors - a.errors);
    fillTable("penalties", rows.map((r) => {
      const tr = document.createElement("tr");
      const kind = r.penalty >= 1 ? "bad" : r.penalty > 0 ? "warn" : "good";
      tr.append(cell(r.model), cell(r.provider, "muted"), cell(pill(r.penalty > 0 ? r.penalty.toFixed(2) : "0", kind), "num"),
        cell(fmtPct(r.success), "num"), cell(fmtCount(r.failed), "num"), cell(fmtCount(r.errors), "num"));
      return tr;
    }));
  }

  function renderEnvoys(envoys) {
    const list = (envoys && Array.isArray(envoys.envoys) ? envoys.envoys : [])
      .slice().sort((a, b) => num(b.queued) - num(a.queued) || String(a.node).localeCompare(String(b.node)));
    fillTable("envoys", list.map((e) => {
      const tr = document.createElement("tr");
      tr.append(cell(String(e.node)), cell(pill(fmtCount(e.queued), e.queued > 0 ? "warn" : ""), "num"),
        cell(pill(fmtCount(e.dropped), e.dropped > 0 ? "bad" : ""), "num"), cell(fmtCount(e.sent), "num"),
        cell(fmtAgo(e.last_seen_ms), "num"));
      return tr;
    }));
  }

  function setKpi(id, text, value, cls) {
    const el = $(id);
    el.textContent = text;
    el.dataset.value = value === null || value === undefined ? "" : String(value);
    if (cls !== undefined) el.className = "value" + (cls ? " " + cls : "");
  }
  function setSub(id, text) {
    $(id).textContent = text;
    $(id).title = text; // the whole text when the tile cuts it
  }

  function renderKpis(stats, windowMs) {
    const t = (stats && stats.totals) || {};
    const requests = num(t.requests);
    setKpi("kpi-requests", fmtCount(requests), requests);
    setSub("kpi-rate", `${fmtRate(requests / (windowMs / 1000))} average`);
    const sr = t.success_rate === undefined ? null : t.success_rate;
    setKpi("kpi-success", fmtPct(sr), sr, sr === null ? "" : sr >= 0.99 ? "good" : sr >= 0.95 ? "warn" : "bad");
    setSub("kpi-errors", `${fmtCount(t.errors)} errors · ${fmtCount(t.failed_attempts)} failed over`);
    setKpi("kpi-cost", fmtUsd(t.cost_usd), num(t.cost_usd));
    setSub("kpi-cost-sub", requests ? `${fmtUsd(num(t.cost_usd) / requests)} per request` : "no requests");
    const tokens = num(t.prompt_tokens) + num(t.completion_tokens);
    setKpi("kpi-tokens", fmtCount(tokens), tokens);
    setSub("kpi-tokens-sub", `${fmtCount(t.prompt_tokens)} in · ${fmtCount(t.completion_tokens)} out`);
    const hit = requests ? num(t.cache_hits) / requests : null;
    setKpi("kpi-cache", fmtPct(hit), hit);
    setSub("kpi-cache-sub", `${fmtCount(t.cache_hits)} answered from cache`);
    const s = stats && stats.saving;
    if (s && s.baseline_cost_usd > 0) {
      setKpi("kpi-saved", fmtUsd(s.saved_usd), s.saved_usd, s.saved_usd > 0 ? "good" : "");
      setSub("kpi-saved-sub", `${fmtPct(s.saved_usd / s.baseline_cost_usd, 0)} vs all on ${s.baseline_model}`);
      $("saving-note").textContent = `share of traffic each model gets · ${fmtUsd(s.cost_usd)} spent where always using ` +
        `${s.baseline_model} (${s.baseline_provider}) would have cost ${fmtUsd(s.baseline_cost_usd)}`;
    } else {
      setKpi("kpi-saved", "–", null, "");
      setSub("kpi-saved-sub", "no priced baseline in this window");
      $("saving-note").textContent = "share of traffic each model gets, by complexity band";
    }
  }

  function meter(bar, text, used, limit, label) {
    fillMeter($(bar), $(text), used, limit, label);
  }

  function fillMeter(el, textEl, used, limit, label) {
    if (!(limit > 0)) {
      el.style.width = "0";
      el.className = "meter-fill none";
      textEl.textContent = label;
      return;
    }
    const share = used / limit;
    el.style.width = Math.min(100, share * 100).toFixed(1) + "%";
    el.className = "meter-fill" + (share >= 0.9 ? " bad" : share >= 0.7 ? " warn" : "");
    textEl.textContent = label;
  }

  /** What a budget meter says: spent of limit over the window, and why it matters now. */
  function budgetLabel(b) {
    return `${fmtUsd(b.spent_usd)} of ${fmtUsd(b.limit_usd)} over ${b.days} day${b.days === 1 ? "" : "s"}` +
      ` (${fmtPct(b.limit_usd > 0 ? b.spent_usd / b.limit_usd : 1)})` +
      (b.source === "default" ? " · the default budget" : "") +
      (b.reserved_usd > 0 ? ` · ${fmtUsd(b.reserved_usd)} reserved in flight` : "") +
      (b.remaining_usd <= 0 ? " · exhausted: requests are refused" : "");
  }

  /** One meter per live virtual key with a budget of its own (at most KEY_BUDGETS_SHOWN). */
  function renderKeyBudgets(keyBudgets) {
    const box = $("key-budgets");
    const list = $("key-budget-list");
    box.hidden = !(keyBudgets && keyBudgets.length);
    list.replaceChildren(...(keyBudgets || []).map(({ key, budget }) => {
      const block = document.createElement("div");
      block.className = "meter-block key-budget";
      block.dataset.key = key.id;
      const name = document.createElement("h4");
      name.textContent = key.name ? `${key.name} (${key.id})` : key.id;
      const track = document.createElement("div");
      track.className = "meter";
      const bar = document.createElement("div");
      track.append(bar);
      const text = document.createElement("p");
      text.className = "meter-text";
      block.append(name, track, text);
      fillMeter(bar, text, budget.spent_usd, budget.limit_usd, budgetLabel(budget));
      return block;
    }));
  }

  function renderTenant(tenant, budget, limits, lastMinute, keyBudgets) {
    const card = $("tenant-card");
    card.hidden = !tenant;
    if (!tenant) return;
    renderKeyBudgets(keyBudgets);
    const t = state.tenants.find((x) => x.id === tenant);
    $("tenant-name").textContent = t && t.name !== t.id ? `${t.name} (${t.id})` : tenant;
    if (budget) {
      meter("budget-bar", "budget-text", budget.spent_usd, budget.limit_usd, budgetLabel(budget));
    } else {
      meter("budget-bar", "budget-text", 0, 0, "No budget: spend is not limited.");
    }
    const lt = (lastMinute && lastMinute.totals) || {};
    const rpm = num(lt.requests);
    const tpm = num(lt.prompt_tokens) + num(lt.completion_tokens);
    const rl = num(limits && limits.requests_per_minute);
    const tl = num(limits && limits.tokens_per_minute);
    meter("rpm-bar", "rpm-text", rpm, rl, rl ? `${fmtCount(rpm)} in the last minute of ${fmtCount(rl)} (${fmtPct(rpm / rl, 0)})`
      : `${fmtCount(rpm)} in the last minute · no limit`);
    meter("tpm-bar", "tpm-text", tpm, tl, tl ? `${fmtCount(tpm)} in the last minute of ${fmtCount(tl)} (${fmtPct(tpm / tl, 0)})`
      : `${fmtCount(tpm)} in the last minute · no limit`);
  }

  function renderTenantPicker() {
    const select = $("tenant");
    const want = state.tenant;
    const options = [["", "All tenants"], ...state.tenants.map((t) => [t.id, t.name && t.name !== t.id ? `${t.name} (${t.id})` : t.id])];
    const same = select.options.length === options.length &&
      options.every(([v, l], i) => select.options[i].value === v && select.options[i].textContent === l);
    if (!same) {
      select.replaceChildren(...options.map(([v, l]) => {
        const o = document.createElement("option");
        o.value = v;
        o.textContent = l;
        return o;
      }));
    }
    if (want && !state.tenants.some((t) => t.id === want)) state.tenant = "";
    select.value = state.tenant;
  }

  // ---- the refresh loop ------------------------------------------------------------

  function setStatus(kind, text) {
    $("status").className = "status " + kind;
    $("status-text").textContent = text;
  }
  function banner(text) {
    $("banner").textContent = text || "";
    $("banner").hidden = !text;
  }

  async function refresh() {
    const seq = ++state.seq;
    const tenant = state.tenant;
    const windowMs = state.windowMs;
    const step = STEPS.get(windowMs) || MINUTE;
    const until = Date.now() + 1;
    const since = until - windowMs;
    const seriesSince = Math.floor(since / step) * step;
    try {
      // The tenant list (the picker) once a minute, not on every refresh: it
      // grows with the tenants, the rest with the traffic.
      if (Date.now() - state.tenantsAt > TENANTS_EVERY_MS || tenant !== state.tenantsFor) {
        const tenants = found(await get("/admin/tenants"));
        state.tenants = (tenants && tenants.tenants) || [];
        state.tenantsAt = Date.now();
        state.tenantsFor = tenant;
      }
      const perTenant = tenant && state.tenants.some((t) => t.id === tenant);
      const path = perTenant ? `/admin/tenants/${encodeURIComponent(tenant)}` : "";
      const [stats, series, penalties, envoys, budget, limits, lastMinute, keyBudgets] = await Promise.all([
        fetchStats(tenant, since, until),
        fetchSeries(tenant, seriesSince, until, step),
        get("/admin/penalties").then(found),
        get("/admin/envoys").then(found),
        perTenant ? get(`${path}/budget`).then(found) : null,
        perTenant ? get(`${path}/limits`).then(found) : null,
        perTenant ? fetchStats(tenant, until - MINUTE, until) : null,
        perTenant ? fetchKeyBudgets(path) : null,
      ]);
      if (seq !== state.seq) return; // a newer refresh (another tenant or window) started
      renderTenantPicker();
      renderKpis(stats, windowMs);
      drawTraffic(series, windowMs);
      drawSpend(series, windowMs);
      drawProviderCost(stats);
      drawModelCost(stats);
      drawPercentiles("chart-latency", stats, "latency_ms");
      drawPercentiles("chart-ttft", stats, "ttft_ms");
      drawBands(stats);
      drawRouting(stats);
      renderPenalties(penalties, stats);
      renderEnvoys(envoys);
      renderTenant(perTenant ? tenant : "", budget, limits, lastMinute, keyBudgets);
      banner("");
      state.refreshes += 1;
      // What is on screen, for a test (or a curious operator): how many
      // refreshes, and of which tenant and window.
      document.documentElement.dataset.refreshes = String(state.refreshes);
      document.documentElement.dataset.shown = `${tenant}|${windowMs}`;
      setStatus("live", "live · " + new Date().toLocaleTimeString("en-GB"));
    } catch (e) {
      if (seq !== state.seq) return;
      if (e instanceof AuthError) {
        signOut("The admin secret is no longer accepted: sign in again.");
        return;
      }
      setStatus("stale", "stale");
      banner(e instanceof HttpError ? `The control plane: ${e.message}. Retrying.` : "The control plane did not answer. Retrying.");
    }
  }

  // A refresh starts every REFRESH_MS (start to start; at once when one took
  // longer); one a picker started meanwhile supersedes it (`state.seq`).
  function schedule(after = REFRESH_MS) {
    clearTimeout(state.timer);
    state.timer = setTimeout(async () => {
      const started = Date.now();
      await refresh();
      if (document.documentElement.dataset.state === "signed-in") schedule(Math.max(0, REFRESH_MS - (Date.now() - started)));
    }, after);
  }
  function refreshNow() {
    refresh();
    schedule();
  }

  // ---- sign-in -------------------------------------------------------------------

  function showSignedIn() {
    document.documentElement.dataset.state = "signed-in";
    $("signin").hidden = true;
    $("app").hidden = false;
    refreshNow();
  }

  function signOut(message) {
    clearTimeout(state.timer);
    state.seq += 1;
    sessionStorage.removeItem(SECRET_KEY);
    state.tenantsAt = 0;
    document.documentElement.dataset.state = "signed-out";
    $("app").hidden = true;
    $("signin").hidden = false;
    const err = $("signin-error");
    err.textContent = message || "";
    err.hidden = !message;
    $("secret").value = "";
    $("secret").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("secret");
    const secret = input.value;
    const err = $("signin-error");
    const button = $("signin-button");
    if (!secret) return;
    button.disabled = true;
    try {
      await get("/admin/tenants", secret);
      sessionStorage.setItem(SECRET_KEY, secret);
      input.value = "";
      err.hidden = true;
      showSignedIn();
    } catch (e) {
      sessionStorage.removeItem(SECRET_KEY);
      document.documentElement.dataset.state = "signed-out";
      err.textContent = e instanceof AuthError ? "Wrong admin secret."
        : e instanceof HttpError ? `The control plane: ${e.message}.` : "The control plane did not answer.";
      err.hidden = false;
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  function start() {
    setupChartDefaults();
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut(""));
    $("tenant").addEventListener("change", (e) => {
      state.tenant = e.target.value;
      refreshNow();
    });
    for (const b of $("window").querySelectorAll("button")) {
      b.addEventListener("click", () => {
        state.windowMs = Number(b.dataset.window);
        for (const o of $("window").querySelectorAll("button")) o.classList.toggle("active", o === b);
        refreshNow();
      });
    }
    if (sessionStorage.getItem(SECRET_KEY)) showSignedIn();
    else signOut("");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
