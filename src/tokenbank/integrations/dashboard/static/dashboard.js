// tokenbank dashboard: plain JavaScript, no library. Reads the page's own JSON endpoints (under data-base),
// follows the live feed with EventSource, and draws the volume chart as SVG. No inline handlers: CSP friendly.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "";
  const config = {
    leaderboard: Number(body.dataset.leaderboardSize) || 10,
    feed: Number(body.dataset.feedSize) || 25,
    page: Number(body.dataset.historyPageSize) || 20,
    refresh: Number(body.dataset.refreshMs) || 5000,
  };
  const SVG = "http://www.w3.org/2000/svg";
  // How each transaction type moves the balance of its sender and its receiver (the ledger's own rules).
  const SIDES = {
    transfer: [-1, 1], reversal: [-1, 1], mint: [0, 1], burn: [-1, 0], hold: [-1, 0], capture: [0, 1], void: [1, 0],
  };
  const state = { symbol: "", decimals: 0, feedSeqs: new Set(), account: null, cursors: [null], refreshTimer: 0 };

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function note(id, text) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  async function getJson(path) {
    const response = await fetch(base + path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const message = payload && payload.message ? payload.message : response.statusText;
      throw new Error(response.status + ": " + message);
    }
    return payload;
  }

  // Amounts arrive as exact decimal strings; they are grouped for display and summed with BigInt, never floats.
  function group(amount) {
    if (amount === null || amount === undefined) return "\u2013";
    const text = String(amount);
    const negative = text.startsWith("-");
    const [whole, fraction] = (negative ? text.slice(1) : text).split(".");
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + grouped + (fraction ? "." + fraction : "");
  }

  function withSymbol(amount) {
    return group(amount) + (state.symbol ? " " + state.symbol : "");
  }

  function toUnits(amount, decimals) {
    const [whole, fraction = ""] = String(amount).split(".");
    return BigInt(whole + fraction.padEnd(decimals, "0").slice(0, decimals));
  }

  function fromUnits(units, decimals) {
    const text = units.toString().padStart(decimals + 1, "0");
    return decimals ? text.slice(0, -decimals) + "." + text.slice(-decimals) : text;
  }

  function time(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString([], { hour12: false });
  }

  function stamp() {
    $("updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
  }

  // supply and token ------------------------------------------------------------------------------------------
  async function loadOverview() {
    const data = await getJson("/api/overview");
    const token = data.token;
    state.symbol = token.symbol;
    state.decimals = token.decimals;
    $("token-name").textContent = (token.emoji ? token.emoji + " " : "") + token.name;
    $("token-symbol").textContent = token.symbol;
    document.title = token.name + " \u2013 tokenbank";
    $("mode").textContent = data.mode;
    $("total-supply").textContent = withSymbol(token.total_supply);
    $("circulating-supply").textContent = withSymbol(token.circulating_supply);
    $("max-supply").textContent = token.max_supply === null ? "unlimited" : withSymbol(token.max_supply);
  }

  async function loadHealth() {
    const data = await getJson("/api/health");
    const badge = $("health-status");
    badge.textContent = data.status;
    badge.className = "badge " + data.status;
    const rows = $("health").tBodies[0];
    rows.replaceChildren(
      ...data.checks.map((check) => {
        const tr = el("tr");
        const status = el("td");
        status.appendChild(el("span", check.status, "badge " + check.status));
        const detail = el("td", check.detail, "detail");
        detail.title = check.detail;
        tr.append(
          el("td", check.name),
          status,
          detail,
          el("td", check.latency_ms === null ? "" : check.latency_ms.toFixed(1), "num"),
        );
        return tr;
      }),
    );
    note("sync", data.sync ? "Sync lag: " + data.sync.detail : "");
  }

  // volume chart ----------------------------------------------------------------------------------------------
  function drawChart(buckets) {
    const width = 800, height = 220, left = 56, right = 8, top = 12, bottom = 26;
    const values = buckets.map((b) => Number(b.volume));
    const max = Math.max(...values, 0);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(SVG, tag);
      for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
      if (text !== undefined) node.textContent = text;
      svg.appendChild(node);
      return node;
    };
    const plotHeight = height - top - bottom;
    const step = (width - left - right) / Math.max(buckets.length, 1);
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plotHeight * (1 - fraction);
      add("line", { x1: left, x2: width - right, y1: y, y2: y, class: "axis" });
      const label = max ? compact(max * fraction) : fraction ? "" : "0";
      add("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, label);
    }
    buckets.forEach((bucket, i) => {
      const h = max ? (values[i] / max) * plotHeight : 0;
      const x = left + i * step;
      const bar = add("rect", {
        x: x + step * 0.12, y: top + plotHeight - h, width: Math.max(step * 0.76, 1), height: Math.max(h, 0),
        class: "bar", "data-start": bucket.start, "data-volume": bucket.volume, "data-count": bucket.count,
      });
      const hour = new Date(bucket.start);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${hour.toISOString().slice(11, 16)} UTC: ${withSymbol(bucket.volume)} in ${bucket.count} transfers`;
      bar.appendChild(title);
      if (i % Math.ceil(buckets.length / 8) === 0 || i === buckets.length - 1) {
        add("text", { x: x + step / 2, y: height - 8, "text-anchor": "middle" }, hour.toISOString().slice(11, 16));
      }
    });
    $("volume-chart").replaceChildren(svg);
  }

  function compact(value) {
    const units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (const [size, suffix] of units) {
      if (Math.abs(value) >= size) return (value / size).toFixed(value / size >= 100 ? 0 : 1) + suffix;
    }
    return value >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(2);
  }

  async function loadVolume() {
    const data = await getJson("/api/volume");
    if (!data.available) {
      note("volume-note", data.reason);
      return;
    }
    note("volume-note", "");
    $("volume-hours").textContent = String(data.buckets.length);
    let total = 0n, count = 0;
    for (const bucket of data.buckets) {
      total += toUnits(bucket.volume, state.decimals);
      count += bucket.count;
    }
    $("volume-total").textContent = withSymbol(fromUnits(total, state.decimals));
    $("volume-count").textContent = count + (count === 1 ? " transfer" : " transfers");
    drawChart(data.buckets);
  }

  // leaderboard -----------------------------------------------------------------------------------------------
  async function loadLeaderboard() {
    const data = await getJson("/api/leaderboard");
    const rows = $("leaderboard").tBodies[0];
    if (!data.available) {
      rows.replaceChildren();
      note("leaderboard-note", data.reason);
      return;
    }
    note("leaderboard-note", data.holders.length ? "" : "No holders yet.");
    rows.replaceChildren(
      ...data.holders.map((holder) => {
        const tr = el("tr");
        tr.dataset.user = holder.user_id;
        tr.append(el("td", holder.rank, "num"), el("td", holder.user_id), el("td", withSymbol(holder.balance), "num"));
        tr.children[1].title = holder.user_id;
        return tr;
      }),
    );
  }

  // live feed -------------------------------------------------------------------------------------------------
  function feedRow(tx, fresh) {
    const tr = el("tr", null, fresh ? "fresh" : "");
    tr.dataset.seq = tx.seq;
    tr.dataset.id = tx.id;
    tr.append(
      el("td", time(tx.timestamp)),
      el("td", null),
      el("td", tx.from_user_id || "\u2013"),
      el("td", tx.to_user_id || "\u2013"),
      el("td", withSymbol(tx.amount), "num"),
    );
    tr.children[1].appendChild(el("span", tx.type, "type"));
    tr.children[2].title = tx.from_user_id || "";
    tr.children[3].title = tx.to_user_id || "";
    tr.title = tx.reason ? tx.id + " \u2013 " + tx.reason : tx.id;
    return tr;
  }

  function addToFeed(tx, fresh) {
    if (state.feedSeqs.has(tx.seq)) return;
    state.feedSeqs.add(tx.seq);
    const rows = $("feed").tBodies[0];
    // Newest first; a transaction that committed late goes where its seq belongs.
    let before = rows.firstChild;
    while (before && Number(before.dataset.seq) > tx.seq) before = before.nextSibling;
    rows.insertBefore(feedRow(tx, fresh), before);
    while (rows.children.length > config.feed) {
      state.feedSeqs.delete(Number(rows.lastChild.dataset.seq));
      rows.removeChild(rows.lastChild);
    }
    note("feed-note", "");
  }

  function setFeedState(name, title) {
    const dot = $("feed-state");
    dot.className = "dot " + name;
    dot.title = title;
  }

  async function startFeed() {
    const data = await getJson("/api/feed");
    if (!data.available) {
      note("feed-note", data.reason);
      setFeedState("off", "not available");
      return;
    }
    data.items.slice().reverse().forEach((tx) => addToFeed(tx, false));
    if (!data.items.length) note("feed-note", "No transactions yet; new ones appear here as they happen.");
    const source = new EventSource(base + "/api/feed/stream?after=" + data.head);
    source.addEventListener("open", () => setFeedState("live", "live"));
    source.addEventListener("error", () => setFeedState("off", "reconnecting"));
    source.addEventListener("transaction", (event) => {
      addToFeed(JSON.parse(event.data), true);
      scheduleRefresh();
    });
  }

  // account lookup --------------------------------------------------------------------------------------------
  function historyRow(tx, account) {
    const [fromSign, toSign] = SIDES[tx.type] || [0, 0];
    const outgoing = tx.from_user_id === account;
    const sign = outgoing ? fromSign : toSign;
    const other = outgoing ? tx.to_user_id : tx.from_user_id;
    const tr = el("tr");
    tr.dataset.seq = tx.seq;
    tr.dataset.id = tx.id;
    const change = sign < 0 ? "-" + group(tx.amount) : sign > 0 ? "+" + group(tx.amount) : group(tx.amount);
    tr.append(
      el("td", new Date(tx.timestamp).toLocaleString([], { hour12: false })),
      el("td", null),
      el("td", other || "\u2013"),
      el("td", change, "num " + (sign < 0 ? "neg" : sign > 0 ? "pos" : "")),
    );
    tr.children[1].appendChild(el("span", tx.type, "type"));
    tr.title = tx.reason ? tx.id + " \u2013 " + tx.reason : tx.id;
    return tr;
  }

  async function showAccount() {
    const account = state.account;
    const cursor = state.cursors[state.cursors.length - 1];
    const query = "?limit=" + config.page + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    let data;
    try {
      data = await getJson("/api/accounts/" + encodeURIComponent(account) + query);
    } catch (error) {
      $("account").hidden = true;
      note("lookup-note", error.message);
      return;
    }
    if (account !== state.account) return; // another lookup started meanwhile
    note("lookup-note", data.items.length || cursor ? "" : "No transactions for this account.");
    $("account-id").textContent = data.user_id;
    $("account-id").title = data.user_id;
    $("account-balance").textContent = withSymbol(data.balance);
    $("account-held").textContent = withSymbol(data.held);
    $("account-rank").textContent = data.rank === null ? "\u2013" : "#" + data.rank;
    $("history").tBodies[0].replaceChildren(...data.items.map((tx) => historyRow(tx, data.user_id)));
    state.next = data.next_cursor;
    $("history-older").disabled = !data.next_cursor;
    $("history-newest").disabled = state.cursors.length === 1;
    $("history-page").textContent = "page " + state.cursors.length;
    $("account").hidden = false;
  }

  function bindLookup() {
    $("lookup-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const account = $("lookup-id").value.trim();
      if (!account) return;
      state.account = account;
      state.cursors = [null];
      showAccount();
    });
    $("history-older").addEventListener("click", () => {
      if (!state.next) return;
      state.cursors.push(state.next);
      showAccount();
    });
    $("history-newest").addEventListener("click", () => {
      state.cursors = [null];
      showAccount();
    });
    $("leaderboard").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-user]");
      if (!row) return;
      $("lookup-id").value = row.dataset.user;
      $("lookup-form").requestSubmit();
    });
  }

  // refreshing ------------------------------------------------------------------------------------------------
  function guarded(load, noteId) {
    return load().catch((error) => {
      if (noteId) note(noteId, error.message);
      else $("updated").textContent = error.message;
    });
  }

  async function refresh() {
    await guarded(loadOverview);
    await Promise.all([
      guarded(loadHealth, "sync"),
      guarded(loadVolume, "volume-note"),
      guarded(loadLeaderboard, "leaderboard-note"),
    ]);
    stamp();
  }

  // New transactions move supply and leaderboard: re-read them soon, at most once per burst.
  function scheduleRefresh() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = 0;
      guarded(loadOverview).then(() => guarded(loadLeaderboard, "leaderboard-note")).then(stamp);
    }, 400);
  }

  async function main() {
    bindLookup();
    await refresh();
    await guarded(startFeed, "feed-note");
    setInterval(refresh, config.refresh);
  }

  main();
})();
