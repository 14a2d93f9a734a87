// The storefront page: live availability, buying, order tracking and cancelling, through
// the public HTTP API only (the same calls a storefront's backend makes).
const TERMINAL = new Set(["shipped", "rejected", "cancelled"]);
const CANCELLABLE = new Set(["accepted", "committed"]);
const params = new URLSearchParams(location.hash.slice(1));
const watched = (params.get("products") || "").split(",").filter(Boolean);
const $ = (id) => document.getElementById(id);

function remembered(name, fallback) {
  const value = params.get(name) || sessionStorage.getItem(name) || fallback();
  sessionStorage.setItem(name, value);
  return value;
}

const keyInput = $("key");
const customerInput = $("customer");
keyInput.value = remembered("key", () => "");
customerInput.value = remembered("customer", () => `web-${crypto.randomUUID().slice(0, 8)}`);
for (const input of [keyInput, customerInput]) {
  input.addEventListener("change", () => sessionStorage.setItem(input.id, input.value));
}
if (params.has("key")) history.replaceState(null, "", location.pathname); // key off the bar

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${keyInput.value}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Idempotency-Key"] = crypto.randomUUID();
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : {};
  return { status: response.status, data };
}

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
      ? (await Promise.all(watched.map((id) => api("GET", `/v1/products/${encodeURIComponent(id)}`))))
          .filter((r) => r.status === 200).map((r) => r.data)
      : (await api("GET", "/v1/products?limit=48")).data.items || [];
    found.forEach(show);
    $("products-state").textContent = `${found.length} shown, live`;
  } catch (error) {
    $("products-state").textContent = `cannot reach the ingress (${error})`;
  }
}

// --- orders -------------------------------------------------------------------------------
async function buy(productId, entry) {
  const quantity = Number(entry.quantity.value);
  entry.buy.disabled = true;
  entry.message.className = "message";
  entry.message.textContent = "placing…";
  try {
    const items = [{ product_id: productId, quantity }];
    const { status, data } = await api("POST", "/v1/orders", {
      customer_id: customerInput.value,
      items,
    });
    if (status === 202) {
      entry.message.textContent = "accepted";
      follow(data.order_id, productId, quantity);
    } else if (status === 409 && data.reason) {
      // refused at the door: the read model already shows it cannot be filled
      entry.message.className = "message refused";
      entry.message.textContent =
        data.reason === "out_of_stock"
          ? `Sold out: ${data.available} left, you asked ${data.quantity}`
          : data.reason === "limit_exceeded"
            ? `At most ${data.limit} per customer, you asked ${data.quantity}`
            : "No longer sold";
    } else {
      entry.message.className = "message error";
      entry.message.textContent = `${data.title || status}: ${data.detail || ""}`;
    }
  } catch (error) {
    entry.message.className = "message error";
    entry.message.textContent = String(error);
  } finally {
    entry.buy.disabled = false;
  }
}

async function follow(orderId, productId, quantity) {
  const li = document.createElement("li");
  li.dataset.orderId = orderId;
  li.innerHTML = `<span class="what"></span> · <span class="status" data-testid="status"></span>
    <span class="detail"></span> <button data-testid="cancel" hidden>Cancel</button>`;
  li.querySelector(".what").textContent = `${quantity} × ${productId}`;
  const statusEl = li.querySelector(".status");
  const detail = li.querySelector(".detail");
  const cancel = li.querySelector("button");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    const { status, data } = await api("POST", `/v1/orders/${orderId}/cancel`);
    detail.textContent = status === 202 ? "cancellation requested" : data.detail || status;
  });
  $("orders").prepend(li);
  let order = { status: "accepted" };
  for (;;) {
    statusEl.textContent = order.status;
    statusEl.className = `status ${order.status}`;
    detail.textContent = order.reason ? `(${order.reason})` : order.total ? `total ${order.total}` : "";
    cancel.hidden = !CANCELLABLE.has(order.status);
    if (TERMINAL.has(order.status)) return;
    const { status, data } = await api("GET", `/v1/orders/${orderId}?wait=10`);
    if (status === 200) order = data;
    else await new Promise((done) => setTimeout(done, 500));
  }
}

refreshProducts();
setInterval(refreshProducts, 1000);
