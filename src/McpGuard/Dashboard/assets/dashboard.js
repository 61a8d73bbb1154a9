// McpGuard dashboard. Everything it shows comes from the admin API, called with the admin key the operator typed in
// (kept in this tab's session storage) or, when the admin API is protected by the app's own policy, with the browser's
// own sign-in. No data is embedded in the page, and nothing is loaded from another origin.
"use strict";

(function () {
  const admin = document.querySelector('meta[name="mcpguard-admin"]').content;
  const auth = document.querySelector('meta[name="mcpguard-auth"]').content;
  const keyItem = "mcpguard.adminKey";
  const svgNs = "http://www.w3.org/2000/svg";
  const views = ["overview", "accounts", "activity", "keys", "tools"];
  const numbers = new Intl.NumberFormat("en-US");
  let overviewWindow = "hour";
  let currentAccount = null;
  let activity = { account: null, cursor: null };

  const $ = (selector, root) => (root || document).querySelector(selector);
  const byTestId = (id) => $(`[data-testid="${id}"]`);
  const format = (value) => (value === null || value === undefined ? "none" : numbers.format(value));

  // ---- the admin API ----

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function adminKey() {
    return sessionStorage.getItem(keyItem);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = adminKey();
    if (key) {
      headers.Authorization = "Bearer " + key;
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(admin + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, describeProblem(response.status, json));
    }
    return json;
  }

  // The problem's detail, and each field's messages under errors (a 400 names every bad field).
  function describeProblem(status, problem) {
    if (!problem || typeof problem.detail !== "string") {
      return `The admin API answered ${status}.`;
    }
    const fields = problem.errors ? Object.entries(problem.errors).map(([field, messages]) => `${field}: ${messages.join(" ")}`) : [];
    return [problem.detail].concat(fields).join(" ");
  }

  function say(testId, text, ok) {
    const element = byTestId(testId);
    element.textContent = text || "";
    element.classList.toggle("error", !!text && !ok);
    element.classList.toggle("ok", !!text && !!ok);
  }

  // Runs an action for a view: its failure (the problem's detail) is shown in the view's message line.
  async function attempt(testId, action) {
    say(testId, "");
    try {
      await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && auth === "key") {
        signOut("The admin key was refused: " + error.message);
        return;
      }
      say(testId, error.message || String(error));
    }
  }

  // ---- sign-in and views ----

  function signedIn() {
    return auth === "policy" || !!adminKey();
  }

  function showSignIn(message) {
    $("#sign-in").hidden = false;
    $("#nav").hidden = true;
    $("#sign-out").hidden = true;
    views.forEach((view) => ($("#view-" + view).hidden = true));
    say("sign-in-message", message || "");
    $("#admin-key").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(keyItem);
    // A key created in this tab is shown once: not again to whoever signs in next.
    byTestId("key-plaintext").textContent = "";
    $("#key-created").hidden = true;
    showSignIn(message);
  }

  function show(view) {
    $("#sign-in").hidden = true;
    $("#nav").hidden = false;
    $("#sign-out").hidden = auth !== "key";
    views.forEach((each) => {
      $("#view-" + each).hidden = each !== view;
      const button = byTestId("nav-" + each);
      if (each === view) {
        button.setAttribute("aria-current", "page");
      } else {
        button.removeAttribute("aria-current");
      }
    });
    if (location.hash !== "#" + view) {
      history.replaceState(null, "", "#" + view);
    }
    load(view);
  }

  function load(view) {
    switch (view) {
      case "overview":
        return attempt("overview-message", loadOverview);
      case "accounts":
        return attempt("accounts-message", loadAccountList);
      case "activity":
        return undefined;
      case "keys":
        return undefined;
      case "tools":
        return attempt("tools-message", loadTools);
      default:
        return undefined;
    }
  }

  // ---- charts: plain SVG ----

  function svg(name, attributes, text) {
    const element = document.createElementNS(svgNs, name);
    Object.entries(attributes || {}).forEach(([key, value]) => element.setAttribute(key, String(value)));
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function label(start, bucketSeconds) {
    const date = new Date(start);
    const hh = String(date.getUTCHours()).padStart(2, "0");
    const mm = String(date.getUTCMinutes()).padStart(2, "0");
    return bucketSeconds >= 3600 ? `${hh}h` : `${hh}:${mm}`;
  }

  // Bars per bucket, with one or more series side by side (series: [{ name, css, values }]).
  function barChart(container, starts, bucketSeconds, series) {
    container.replaceChildren();
    const width = 720;
    const height = 180;
    const left = 56;
    const bottom = 22;
    const top = 8;
    const plotWidth = width - left - 8;
    const plotHeight = height - top - bottom;
    const max = Math.max(1, ...series.flatMap((s) => s.values));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": series.map((s) => s.name).join(" and ") + " per bucket" });
    chart.append(svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - 8, y2: top + plotHeight }));
    chart.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, numbers.format(max)));
    chart.append(svg("text", { x: left - 6, y: top + plotHeight, "text-anchor": "end" }, "0"));
    const slot = plotWidth / Math.max(1, starts.length);
    const barWidth = Math.max(2, (slot * 0.8) / series.length);
    const every = Math.ceil(starts.length / 12);
    starts.forEach((start, i) => {
      series.forEach((s, j) => {
        const value = s.values[i];
        const barHeight = (value / max) * plotHeight;
        const bar = svg("rect", {
          class: "bar " + s.css,
          x: left + i * slot + slot * 0.1 + j * barWidth,
          y: top + plotHeight - barHeight,
          width: barWidth,
          height: barHeight,
          "data-value": value,
        });
        bar.append(svg("title", {}, `${label(start, bucketSeconds)} ${s.name}: ${numbers.format(value)}`));
        chart.append(bar);
      });
      if (i % every === 0) {
        chart.append(svg("text", { x: left + i * slot + slot / 2, y: height - 6, "text-anchor": "middle" }, label(start, bucketSeconds)));
      }
    });
    container.append(chart);
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s) => {
      const item = document.createElement("span");
      item.className = s.css;
      item.textContent = `${s.name} (${numbers.format(s.values.reduce((a, b) => a + b, 0))})`;
      legend.append(item);
    });
    container.append(legend);
  }

  // Horizontal bars, one per reason.
  function reasonChart(container, refusals) {
    container.replaceChildren();
    if (refusals.length === 0) {
      const empty = document.createElement("p");
      empty.className = "note";
      empty.textContent = "No refusals in this window.";
      container.append(empty);
      return;
    }
    const width = 720;
    const row = 24;
    const left = 170;
    const height = refusals.length * row + 8;
    const max = Math.max(1, ...refusals.map((r) => r.count));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Refusals by reason" });
    refusals.forEach((refusal, i) => {
      const y = 4 + i * row;
      const barWidth = (refusal.count / max) * (width - left - 60);
      chart.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, refusal.reason));
      const bar = svg("rect", { class: "bar refused", x: left, y: y + 3, width: barWidth, height: row - 8, "data-value": refusal.count });
      bar.append(svg("title", {}, `${refusal.reason}: ${numbers.format(refusal.count)}`));
      chart.append(bar);
      chart.append(svg("text", { x: left + barWidth + 6, y: y + 15 }, numbers.format(refusal.count)));
    });
    container.append(chart);
  }

  // ---- overview ----

  // The request charts (this instance) and the money charts (the ledger) are drawn apart: with credits off, usage
  // answers 409 and its detail is shown, while the traffic still draws.
  async function loadOverview() {
    const [traffic, usage] = await Promise.allSettled([api("GET", `/traffic?window=${overviewWindow}`), api("GET", `/usage?window=${overviewWindow}`)]);
    const failures = [traffic, usage].filter((r) => r.status === "rejected").map((r) => r.reason);
    if (traffic.status === "fulfilled") {
      const t = traffic.value;
      byTestId("figure-passed").textContent = format(t.passed);
      byTestId("figure-refused").textContent = format(t.refused);
      barChart(byTestId("chart-traffic"), t.buckets.map((b) => b.start), t.bucket_seconds, [
        { name: "Passed", css: "passed", values: t.buckets.map((b) => b.passed) },
        { name: "Refused", css: "refused", values: t.buckets.map((b) => b.refused) },
      ]);
      reasonChart(byTestId("chart-refusals"), t.refusals);
    }
    if (usage.status === "fulfilled") {
      const u = usage.value;
      byTestId("figure-charged-calls").textContent = format(u.totals.charged_calls);
      byTestId("figure-free-calls").textContent = format(u.totals.free_calls);
      byTestId("figure-charged").textContent = format(u.totals.charged_micro);
      byTestId("figure-refunded").textContent = format(u.totals.refunded_micro);
      barChart(byTestId("chart-money"), u.buckets.map((b) => b.start), u.bucket_seconds, [
        { name: "Charged", css: "charged", values: u.buckets.map((b) => b.charged_micro) },
        { name: "Refunded", css: "refunded", values: u.buckets.map((b) => b.refunded_micro) },
      ]);
    }
    if (failures.length > 0) {
      throw failures[0];
    }
  }

  // ---- accounts ----

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  async function loadAccountList() {
    const usage = await api("GET", "/usage?window=day");
    const body = $("tbody", byTestId("accounts-table"));
    body.replaceChildren();
    usage.accounts.forEach((account) => {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = account.account;
      open.addEventListener("click", () => {
        $("#account-id").value = account.account;
        attempt("accounts-message", () => lookUp(account.account));
      });
      name.append(open);
      tr.append(name, cell(format(account.charged_calls), "number"), cell(format(account.free_calls), "number"),
        cell(format(account.charged_micro), "number"), cell(format(account.refunded_micro), "number"));
      body.append(tr);
    });
  }

  function showAccount(account) {
    currentAccount = account.id;
    $("#account-card").hidden = false;
    byTestId("account-name").textContent = account.id;
    byTestId("account-balance").textContent = format(account.balance_micro);
    byTestId("account-cap").textContent = format(account.monthly_cap_micro);
    byTestId("account-spent").textContent = format(account.spent_this_month_micro);
    byTestId("account-free").textContent = format(account.free_calls_left);
    const status = byTestId("account-status");
    status.textContent = account.status;
    status.className = "status-" + account.status;
    $("#suspend").disabled = account.status === "suspended";
    $("#reactivate").disabled = account.status !== "suspended";
  }

  // The card shows the account looked up last, or none when that look-up failed (no change goes to another account).
  async function lookUp(id) {
    $("#account-card").hidden = true;
    currentAccount = null;
    showAccount(await api("GET", `/accounts/${encodeURIComponent(id)}`));
  }

  // A whole number typed in a field, or the text as typed: the admin API says what is wrong with it.
  function amount(text) {
    const trimmed = text.trim();
    return /^-?\d+$/.test(trimmed) && Number.isSafeInteger(Number(trimmed)) ? Number(trimmed) : trimmed;
  }

  // ---- activity ----

  const kinds = { top_up: "top-up", usage: "usage", refund: "refund", adjustment: "adjustment", reservation: "reservation", capture: "capture", release: "release" };

  async function loadActivity(account, older) {
    const query = older && activity.cursor ? `?before=${activity.cursor}` : "";
    const page = await api("GET", `/accounts/${encodeURIComponent(account)}/ledger${query}`);
    const body = $("tbody", byTestId("activity-table"));
    if (!older) {
      body.replaceChildren();
    }
    page.entries.forEach((entry) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = "activity-row";
      tr.dataset.entryId = entry.id;
      tr.append(
        cell(String(entry.id), "number"),
        cell(entry.timestamp.replace("T", " ").slice(0, 19)),
        cell(kinds[entry.kind] + (entry.free ? " (free)" : "")),
        cell(format(entry.amount_micro), "number"),
        cell(format(entry.balance_after_micro), "number"),
        cell(entry.tool || ""),
        cell(entry.request_id || ""),
        cell(entry.note || ""));
      body.append(tr);
    });
    activity = { account, cursor: page.next_cursor };
    $("#activity-older").hidden = page.next_cursor === null;
    if (page.entries.length === 0 && !older) {
      say("activity-message", `No ledger rows for ${account}.`, true);
    }
  }

  function showActivity(account) {
    $("#activity-account").value = account;
    show("activity");
    attempt("activity-message", () => loadActivity(account, false));
  }

  // ---- tools ----

  async function loadTools() {
    // Calls and revenue need the ledger (usage answers 409 with credits off): the table is drawn without them then.
    const [tools, usage, traffic] = await Promise.allSettled([api("GET", "/tools"), api("GET", "/usage?window=day"), api("GET", "/traffic?window=day")]);
    if (tools.status === "rejected") {
      throw tools.reason;
    }
    const used = new Map(usage.status === "fulfilled" ? usage.value.tools.map((t) => [t.tool, t]) : []);
    const seen = new Map(traffic.status === "fulfilled" ? traffic.value.tools.map((t) => [t.tool, t]) : []);
    const body = $("tbody", byTestId("tools-table"));
    body.replaceChildren();
    tools.value.tools.forEach((tool) => {
      const money = used.get(tool.tool);
      const requests = seen.get(tool.tool);
      const tr = document.createElement("tr");
      tr.dataset.testid = "tool-row-" + tool.tool;
      const status = cell(tool.status + (tool.status !== tool.configured_status ? ` (configured: ${tool.configured_status})` : ""), "status-" + tool.status);
      status.dataset.testid = "tool-status-" + tool.tool;
      const actions = document.createElement("td");
      const row = document.createElement("div");
      row.className = "row";
      [["pause", "Pause"], ["archive", "Archive"], ["restore", "Restore"]].forEach(([action, text]) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary";
        button.textContent = text;
        button.dataset.testid = `tool-${action}-${tool.tool}`;
        button.setAttribute("aria-label", `${text} ${tool.tool}`);
        button.addEventListener("click", () => attempt("tools-message", async () => {
          const result = await api("POST", `/tools/${encodeURIComponent(tool.tool)}/${action}`);
          await loadTools();
          say("tools-message", `${result.tool} is ${result.status}.`, true);
        }));
        row.append(button);
      });
      actions.append(row);
      tr.append(
        cell(tool.tool),
        cell(format(tool.price_micro), "number"),
        cell(tool.scopes.join(" ")),
        status,
        cell(format(requests ? requests.passed : 0), "number"),
        cell(format(money ? money.net_micro : 0), "number"),
        cell(format(requests ? requests.refused : 0), "number"),
        actions);
      body.append(tr);
    });
    const failure = [usage, traffic].find((r) => r.status === "rejected");
    if (failure) {
      throw failure.reason;
    }
  }

  // ---- wiring ----

  function wire() {
    $("#sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("#admin-key").value.trim();
      if (!key) {
        return;
      }
      sessionStorage.setItem(keyItem, key);
      $("#admin-key").value = "";
      try {
        await api("GET", "/tools");
        show(views.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview");
      } catch (error) {
        signOut(error.message);
      }
    });
    $("#sign-out").addEventListener("click", () => signOut("Signed out."));
    views.forEach((view) => byTestId("nav-" + view).addEventListener("click", () => show(view)));
    document.querySelectorAll("[data-window]").forEach((button) => button.addEventListener("click", () => {
      overviewWindow = button.dataset.window;
      document.querySelectorAll("[data-window]").forEach((each) => each.setAttribute("aria-pressed", String(each === button)));
      attempt("overview-message", loadOverview);
    }));

    $("#account-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("accounts-message", () => lookUp($("#account-id").value.trim()));
    });
    $("#topup-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("accounts-message", async () => {
        const note = $("#topup-note").value.trim();
        const result = await api("POST", `/accounts/${encodeURIComponent(currentAccount)}/topup`, { amount_micro: amount($("#topup-amount").value), note: note || null });
        showAccount(result.account);
        $("#topup-amount").value = "";
        $("#topup-note").value = "";
        say("accounts-message", `Topped up ${result.account.id} by ${format(result.entry.amount_micro)} (ledger row ${result.entry.id}).`, true);
      });
    });
    $("#cap-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("accounts-message", async () => {
        const text = $("#cap-amount").value.trim();
        const account = await api("PUT", `/accounts/${encodeURIComponent(currentAccount)}/cap`, { monthly_cap_micro: text === "" ? null : amount(text) });
        showAccount(account);
        say("accounts-message", `Monthly cap of ${account.id}: ${format(account.monthly_cap_micro)}.`, true);
      });
    });
    ["suspend", "reactivate"].forEach((action) => $("#" + action).addEventListener("click", () => attempt("accounts-message", async () => {
      const account = await api("POST", `/accounts/${encodeURIComponent(currentAccount)}/${action}`);
      showAccount(account);
      say("accounts-message", `${account.id} is ${account.status}.`, true);
    })));
    $("#account-activity").addEventListener("click", () => showActivity(currentAccount));

    $("#activity-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("activity-message", () => loadActivity($("#activity-account").value.trim(), false));
    });
    $("#activity-older").addEventListener("click", () => attempt("activity-message", () => loadActivity(activity.account, true)));

    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("keys-message", async () => {
        $("#key-created").hidden = true;
        const request = {
          account: $("#key-account").value.trim(),
          scopes: $("#key-scopes").value.split(/\s+/).filter((s) => s.length > 0),
          expires_at: $("#key-expires").value.trim() || null,
          id: $("#key-id").value.trim() || null,
        };
        const key = await api("POST", "/keys", request);
        byTestId("key-created-id").textContent = key.id;
        byTestId("key-created-account").textContent = key.account;
        byTestId("key-plaintext").textContent = key.key;
        $("#key-created").hidden = false;
        $("#key-form").reset();
      });
    });
    $("#revoke-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt("keys-message", async () => {
        const result = await api("POST", `/keys/${encodeURIComponent($("#revoke-id").value.trim())}/revoke`);
        $("#key-created").hidden = true;
        byTestId("key-plaintext").textContent = "";
        $("#revoke-form").reset();
        say("keys-message", `Key ${result.id} is revoked.`, true);
      });
    });
  }

  wire();
  if (signedIn()) {
    show(views.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview");
  } else {
    showSignIn();
  }
})();
