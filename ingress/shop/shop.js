// The storefront page: a customer signs in (or registers), sees live availability, buys,
// follows "my orders" and cancels, through the public HTTP API and the customer's own
// access token only. The page never holds a storefront key.
const TERMINAL = new Set(["shipped", "rejected", "cancelled"]);
const CANCELLABLE = new Set(["accepted", "committed"]);
const BUY_ATTEMPTS = 6; // one click, one Idempotency-Key, at most this many sends
const POLL_WAIT_S = 10;
const params = new URLSearchParams(location.hash.slice(1));
const watched = (params.get("products") || "").split(",").filter(Boolean);
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// --- the session --------------------------------------------------------------------------
// The tokens live in sessionStorage, not localStorage: this is a tab-scoped demo. They go
// when the tab closes, and two tabs never share one rotating refresh token (one tab's
// rotation would turn the other's next refresh into a reuse, which revokes the session).
const STORED = "orderstream.session";
let tokens = JSON.parse(sessionStorage.getItem(STORED) || "null"); // + expires_at (ms)
let session = new AbortController(); // aborted on sign-out: ends the long-polls
let refreshing = null; // one refresh at a time: a rotated refresh token works once
let refreshTimer = 0;

class SignedOut extends Error {}

function keep(answer) {
  tokens = {
    access_token: answer.access_token,
    refresh_token: answer.refresh_token,
    expires_at: Date.now() + answer.expires_in * 1000,
  };
  sessionStorage.setItem(STORED, JSON.stringify(tokens));
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!tokens) return;
  // a minute before expiry (a fifth of the lifetime for short-lived tokens)
  const left = tokens.expires_at - Date.now();
  const margin = Math.min(60_000, left / 5);
  refreshTimer = setTimeout(() => refresh(), Math.max(1000, left - margin));
}

function forget(message) {
  clearTimeout(refreshTimer);
  tokens = null;
  sessionStorage.removeItem(STORED);
  session.abort();
  session = new AbortController();
  signedInAs(null);
  if (message) say($("account-message"), message, "error");
}

async function call(method, path, { body, headers = {}, token, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, init);
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : {};
  return { status: response.status, data, headers: response.headers };
}

// The new token pair, or null once the session is over (the refresh token was refused).
function refresh() {
  if (!refreshing) {
    refreshing = renew();
    refreshing.finally(() => (refreshing = null));
  }
  return refreshing;
}

async function renew() {
  const owner = session; // an answer that comes after signing out is dropped
  if (!tokens) return null;
  try {
    const { status, data } = await call("POST", "/v1/auth/refresh", {
      body: { refresh_token: tokens.refresh_token },
      signal: owner.signal,
    });
    if (owner !== session) return null;
    if (status === 200) {
      keep(data);
      return tokens;
    }
    if (status === 401 || status === 400 || status === 422) {
      forget("Your session has ended: sign in again.");
      return null;
    }
    scheduleRefresh(); // the ingress is busy: try again later, the token still works
  } catch {
    if (owner !== session) return null;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refresh(), 5000); // no answer: try again shortly
  }
  return tokens;
}

// A call as the signed-in customer; a 401 refreshes the access token once and sends again.
async function authed(method, path, options = {}) {
  if (!tokens) throw new SignedOut();
  const used = tokens.access_token;
  const signal = options.signal || session.signal;
  const answer = await call(method, path, { ...options, signal, token: used });
  if (answer.status !== 401) return answer;
  if (tokens && tokens.access_token === used) await refresh(); // else another call did
  if (!tokens) throw new SignedOut();
  return call(method, path, { ...options, signal, token: tokens.access_token });
}

// --- signing in ---------------------------------------------------------------------------
function say(el, text, kind = "") {
  el.className = `message ${kind}`.trim();
  el.textContent = text;
}

// The API's reason, as its problem body gives it, with every field a 422 names.
function problem(status, data) {
  let text = data.title || `HTTP ${status}`;
  if (data.detail) text += `: ${data.detail}`;
  const unsaid = (data.errors || []).filter((e) => !text.includes(e.field));
  return unsaid.length ? `${text} (${unsaid.map((e) => `${e.field}: ${e.message}`).join("; ")})` : text;
}

function markInvalid(form, errors) {
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
  for (const { field } of errors || []) {
    const input = form.querySelector(`input[name="${CSS.escape(field.split(".").pop())}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  }
}

function signedInAs(me) {
  $("sign-in").hidden = Boolean(me);
  $("signed-in").hidden = !me;
  $("whoami").textContent = me ? `${me.name} <${me.email}>` : "";
  $("whoami").dataset.customerId = me ? me.customer_id : "";
  for (const entry of cards.values()) entry.buy.disabled = !me;
  if (!me) {
    orders.clear();
    $("orders").replaceChildren();
    $("more-orders").hidden = true;
    $("orders-state").textContent = "sign in to see them";
  }
}

async function start() {
  try {
    const { status, data } = await authed("GET", "/v1/auth/me");
    if (status !== 200) throw new Error(problem(status, data));
    say($("account-message"), "");
    signedInAs(data);
    await loadOrders();
  } catch (error) {
    if (error instanceof SignedOut || error.name === "AbortError") return;
    say($("account-message"), String(error), "error");
  }
}

async function logIn(email, password) {
  const { status, data } = await call("POST", "/v1/auth/login", { body: { email, password } });
  if (status !== 200) return problem(status, data);
  keep(data);
  await start();
  return null;
}

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const register = event.submitter?.value === "register";
  const [email, password, name] = ["email", "password", "name"].map((id) => $(id).value);
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  say($("account-message"), register ? "registering…" : "signing in…");
  try {
    let failed = null;
    if (register) {
      const { status, data } = await call("POST", "/v1/auth/register", {
        body: { email, password, name },
      });
      markInvalid(form, data.errors);
      if (status !== 201) failed = problem(status, data);
    } else {
      markInvalid(form, []);
    }
    failed ??= await logIn(email, password);
    if (failed) say($("account-message"), failed, "error");
    else $("password").value = "";
  } catch (error) {
    say($("account-message"), String(error), "error");
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
});

$("logout").addEventListener("click", async (event) => {
  const refreshToken = tokens?.refresh_token;
  event.target.disabled = true;
  try {
    if (refreshToken) {
      await call("POST", "/v1/auth/logout", { body: { refresh_token: refreshToken } });
    }
  } catch {
    // no answer: the session leaves this tab anyway, and its refresh token expires
  } finally {
    event.target.disabled = false;
    forget();
    say($("account-message"), "signed out");
  }
});

// --- products -----------------------------------------------------------------------------
const cards = new Map(); // product_id -> {card, fields}

function card(product) {
  let entry = cards.get(product.product_id);
  if (entry) return entry;
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.productId = product.product_id;
  el.innerHTML = `
    <h3></h3><div class="id"></div><div class="price"></div>
    <div class="stock" data-testid="available"></div>
    <div class="row"><input type="number" min="1" value="1" aria-label="quantity">
      <button data-testid="buy">Buy</button></div>
    <div class="message" data-testid="message" role="status"></div>`;
  entry = {
    el,
    name: el.querySelector("h3"),
    id: el.querySelector(".id"),
    price: el.querySelector(".price"),
    stock: el.querySelector(".stock"),
    quantity: el.querySelector("input"),
    buy: el.querySelector("button"),
    message: el.querySelector(".message"),
  };
  entry.buy.disabled = !tokens;
  entry.buy.addEventListener("click", () => buy(product.product_id, entry));
  cards.set(product.product_id, entry);
  $("products").append(el);
  return entry;
}

function show(product) {
  const entry = card(product);
  entry.name.textContent = product.name;
  entry.id.textContent = product.product_id;
  entry.price.textContent = product.price;
  const soldOut = product.available <= 0;
  entry.stock.textContent = product.active
    ? soldOut ? "sold out" : `${product.available} left`
    : "discontinued";
  entry.stock.dataset.available = String(product.available);
  entry.stock.classList.toggle("low", product.active && product.available < 10);
  entry.el.classList.toggle("gone", !product.active || soldOut);
}

async function refreshProducts() {
  try {
    const found = watched.length
      ? (await Promise.all(watched.map((id) => call("GET", `/v1/products/${encodeURIComponent(id)}`))))
          .filter((r) => r.status === 200).map((r) => r.data)
      : (await call("GET", "/v1/products?limit=48")).data.items || [];
    found.forEach(show);
    $("products-state").textContent = `${found.length} shown, live`;
  } catch (error) {
    $("products-state").textContent = `cannot reach the ingress (${error})`;
  }
}

// --- buying -------------------------------------------------------------------------------
// Seconds to wait before sending the same order again: Retry-After, else a short backoff.
function retryDelay(headers, attempt) {
  const seconds = Number(headers?.get("Retry-After"));
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : 0.25 * 2 ** attempt) * 1000;
}

// POST the order; a network error, a 503 or a 429 sends it again with the same
// Idempotency-Key and body, so every retry is the same order (never a second one).
async function placeOrder(items, onRetry) {
  const key = crypto.randomUUID();
  for (let attempt = 1; ; attempt++) {
    let answer;
    try {
      answer = await authed("POST", "/v1/orders", {
        body: { items },
        headers: { "Idempotency-Key": key },
      });
    } catch (error) {
      if (!(error instanceof TypeError) || attempt >= BUY_ATTEMPTS) throw error;
      onRetry(`no answer (${error.message}), trying again…`);
      await sleep(retryDelay(null, attempt));
      continue;
    }
    if ((answer.status === 503 || answer.status === 429) && attempt < BUY_ATTEMPTS) {
      onRetry(`${answer.data.title || answer.status}, trying again…`);
      await sleep(retryDelay(answer.headers, attempt));
      continue;
    }
    return answer;
  }
}

async function buy(productId, entry) {
  const quantity = Number(entry.quantity.value);
  entry.buy.disabled = true;
  say(entry.message, "placing…");
  try {
    const items = [{ product_id: productId, quantity }];
    const { status, data } = await placeOrder(items, (text) => say(entry.message, text));
    if (status === 202 || status === 201) {
      say(entry.message, "accepted");
      showOrder({ status: "accepted", ...data, items: data.items || items }, { first: true });
    } else if (status === 409 && data.reason) {
      // refused at the door: the read model already shows it cannot be filled
      say(
        entry.message,
        data.reason === "out_of_stock"
          ? `Sold out: ${data.available} left, you asked ${data.quantity}`
          : data.reason === "limit_exceeded"
            ? `At most ${data.limit} per customer, you asked ${data.quantity}`
            : "No longer sold",
        "refused",
      );
    } else {
      say(entry.message, problem(status, data), "error");
    }
  } catch (error) {
    if (error instanceof SignedOut) say(entry.message, "sign in to buy", "error");
    else if (error.name !== "AbortError") say(entry.message, String(error), "error");
  } finally {
    entry.buy.disabled = !tokens;
  }
}

// --- my orders ----------------------------------------------------------------------------
const orders = new Map(); // order_id -> {li, fields, order}
let olderAfter = null;

function orderRow(orderId, first) {
  let entry = orders.get(orderId);
  if (entry) return entry;
  const li = document.createElement("li");
  li.dataset.orderId = orderId;
  li.dataset.testid = "order";
  li.innerHTML = `<span class="what"></span> · <span class="status" data-testid="status"></span>
    <span class="detail" data-testid="detail"></span>
    <button data-testid="cancel" class="secondary" hidden>Cancel</button>
    <span class="when"></span>`;
  entry = {
    li,
    what: li.querySelector(".what"),
    status: li.querySelector(".status"),
    detail: li.querySelector(".detail"),
    cancel: li.querySelector("button"),
    when: li.querySelector(".when"),
    note: "",
    order: null,
  };
  entry.cancel.addEventListener("click", () => cancel(orderId, entry));
  orders.set(orderId, entry);
  if (first) $("orders").prepend(li);
  else $("orders").append(li);
  return entry;
}

function showOrder(order, { first = false } = {}) {
  const entry = orderRow(order.order_id, first);
  entry.order = order;
  render(entry);
  follow(order.order_id, entry);
}

function render(entry) {
  const { order } = entry;
  entry.what.textContent = (order.items || [])
    .map((line) => `${line.quantity} × ${line.product_id}`)
    .join(", ");
  entry.when.textContent = order.created_at ? new Date(order.created_at).toLocaleString() : "";
  entry.status.textContent = order.status;
  entry.status.className = `status ${order.status}`;
  const facts = order.reason ? `(${order.reason})` : order.total ? `total ${order.total}` : "";
  const note = TERMINAL.has(order.status) ? "" : entry.note;
  entry.detail.textContent = [facts, note].filter(Boolean).join(" ");
  entry.cancel.hidden = !CANCELLABLE.has(order.status);
}

// Long-polls one order until it is final: one loop per order, ended by signing out.
async function follow(orderId, entry) {
  if (entry.following || TERMINAL.has(entry.order.status)) return;
  entry.following = true;
  const { signal } = session;
  while (!TERMINAL.has(entry.order.status) && !signal.aborted) {
    let answer;
    try {
      answer = await authed("GET", `/v1/orders/${orderId}?wait=${POLL_WAIT_S}`, { signal });
    } catch (error) {
      if (error instanceof SignedOut || error.name === "AbortError") return;
      answer = { status: 0 }; // no answer: ask again shortly
    }
    if (signal.aborted) return;
    if (answer.status === 200) {
      entry.order = { ...entry.order, ...answer.data };
      render(entry);
    } else {
      await sleep(answer.status === 404 ? 300 : 1000); // not in the read model yet
    }
  }
}

async function cancel(orderId, entry) {
  entry.cancel.disabled = true;
  try {
    const { status, data } = await authed("POST", `/v1/orders/${orderId}/cancel`);
    entry.note = status === 202 ? "cancellation requested" : problem(status, data);
    render(entry);
  } catch (error) {
    if (!(error instanceof SignedOut) && error.name !== "AbortError") {
      entry.note = String(error);
      render(entry);
    }
  } finally {
    entry.cancel.disabled = false;
  }
}

async function loadOrders(after = null) {
  const query = new URLSearchParams({ limit: "20" });
  if (after) query.set("after", after);
  $("orders-state").textContent = "loading…";
  const { status, data } = await authed("GET", `/v1/customers/me/orders?${query}`);
  if (status !== 200) {
    $("orders-state").textContent = problem(status, data);
    return;
  }
  for (const order of data.items || []) showOrder(order);
  olderAfter = data.next || null;
  $("more-orders").hidden = !olderAfter;
  $("orders-state").textContent = orders.size ? "" : "none yet";
}

$("more-orders").addEventListener("click", () => loadOrders(olderAfter).catch(() => {}));

signedInAs(null);
if (tokens) {
  scheduleRefresh();
  start();
}
addEventListener("hashchange", () => location.reload()); // another choice of products
refreshProducts();
setInterval(refreshProducts, 1000);
