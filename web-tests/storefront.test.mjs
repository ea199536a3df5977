// The storefront and the admin console in a real browser: Debian's Chromium driven by
// playwright-core, against a running CommerceX (scripts/test-web starts one, and puts one
// poisoned order.placed event on its bus for the dead-letter replay). Each customer is a
// fresh browser context.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const BASE = process.env.COMMERCEX_URL ?? "http://127.0.0.1:8080";
const ADMIN_EMAIL = process.env.COMMERCEX_ADMIN_EMAIL;
const ADMIN_PASSWORD = process.env.COMMERCEX_ADMIN_PASSWORD;
const PASSWORD = "correct horse battery staple";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const RUN = Date.now().toString(36);
// Where screenshots of the main pages go (CI keeps them as artifacts); none when unset.
const SCREENSHOTS = process.env.COMMERCEX_SCREENSHOTS;
// The API, where it is not where the pages are (distributed: the gateway, behind `serve web`).
const API = process.env.COMMERCEX_API_URL ?? BASE;

let browser;
const products = {};

async function api(method, path, token, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A product with stock, created and stocked through the API as the administrator. */
async function stockedProduct(admin, sku, name, amount, units) {
  const product = await api("POST", "/api/v1/products", admin, {
    sku, name, description: `${name}: made to last.`, category: "home",
    price: { amount, currency: "EUR" },
  });
  await waitFor(async () => {
    const response = await fetch(`${API}/api/v1/inventory/${product.id}`);
    return response.ok;
  });
  await api("POST", `/api/v1/inventory/${product.id}/adjustments`, admin, { delta: units, reason: "delivery" });
  await waitFor(async () => (await api("GET", `/api/v1/products/${product.id}`)).available === units);
  return product;
}

async function waitFor(check, seconds = 20) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("timed out waiting");
}

/** A fresh browser context whose page fails the test on a Content-Security-Policy violation. */
async function visitor(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const violations = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  page.on("pageerror", (error) => violations.push(String(error)));
  return { context, page, violations };
}

/** Keeps a screenshot of the page as `name`.png when screenshots are asked for. */
async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

/** Runs axe-core on the page; serious and critical findings fail. */
async function accessible(page, where) {
  await page.evaluate(AXE);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = results.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  assert.deepEqual(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`), [], `accessibility of ${where}`);
}

async function addToCart(page, product, quantity = "1") {
  await page.goto(`${BASE}/products/${product.id}`);
  await page.getByLabel("Quantity").fill(quantity);
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.waitForURL(`${BASE}/cart`);
}

async function signUp(page, name, email) {
  await page.getByRole("link", { name: "Create one" }).click();
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
}

/** Signs in as the administrator and opens the admin console's overview. */
async function openTheConsole(page) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel("Email").fill(ADMIN_EMAIL);
  await page.getByLabel("Password").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Admin", exact: true }).click();
}

/** Clicks a form's button and waits for the page the post leads to. */
async function submit(page, button) {
  await Promise.all([page.waitForEvent("load"), button.click()]);
}

/** A new customer puts a mug in the cart, signs up at checkout and pays with the card whose
 * label matches `card`; the order's page is open when it returns. */
async function checkOutAMug(page, name, email, card) {
  await addToCart(page, products.mug);
  await page.getByRole("link", { name: "Check out" }).click();
  await signUp(page, name, email);
  await page.waitForURL(`${BASE}/checkout`);
  await fillAddress(page);
  if (card) await page.getByLabel(card).check();
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
}

async function fillAddress(page) {
  await page.getByLabel("Address", { exact: true }).fill("12 Analytical Way");
  await page.getByLabel("City").fill("London");
  await page.getByLabel("Postal code").fill("N1 9GU");
  await page.getByLabel("Country code (two letters, e.g. DE)").fill("GB");
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium" });
  const admin = (await api("POST", "/api/v1/auth/login", null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).access_token;
  products.lamp = await stockedProduct(admin, `LAMP-${RUN}`, `Brass desk lamp ${RUN}`, 4900, 20);
  products.mug = await stockedProduct(admin, `MUG-${RUN}`, `Stoneware mug ${RUN}`, 1250, 20);
});

after(async () => {
  await browser?.close();
});

test("a customer searches, fills a cart, signs up at checkout, pays with tok_visa and watches the order confirmed", async () => {
  const { context, page, violations } = await visitor();
  await page.goto(BASE);
  await accessible(page, "the home page");
  await screenshot(page, "home");
  await page.getByRole("search").getByLabel("Search products").fill(`lamp ${RUN}`);
  await page.getByRole("search").getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: products.lamp.name }).click();
  await assert.doesNotReject(page.getByText("49.00 EUR").first().waitFor());
  await accessible(page, "a product page");
  await screenshot(page, "product");
  await addToCart(page, products.lamp, "2");
  await addToCart(page, products.mug);
  await assert.doesNotReject(page.getByText("Total: 110.50 EUR").waitFor());
  await accessible(page, "the cart");
  await screenshot(page, "cart");

  await page.getByRole("link", { name: "Check out" }).click();
  await page.waitForURL(/\/login\?next=%2Fcheckout$/);
  await accessible(page, "sign-in");
  await page.getByRole("link", { name: "Create one" }).click();
  await accessible(page, "sign-up");
  await page.goBack();
  await signUp(page, "Ada Lovelace", `ada-${RUN}@example.com`);
  await page.waitForURL(`${BASE}/checkout`);
  await accessible(page, "checkout");
  await screenshot(page, "checkout");
  await fillAddress(page);
  await page.getByLabel(/Visa that pays/).check();
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  await page.locator('#progress [data-status="confirmed"]').waitFor({ timeout: 30_000 });
  await assert.doesNotReject(page.getByText("Payment captured, order confirmed").waitFor());
  await accessible(page, "the order page");
  await screenshot(page, "order");
  await page.getByRole("link", { name: "My orders", exact: true }).click();
  await assert.doesNotReject(page.getByRole("cell", { name: /Confirmed/ }).first().waitFor());
  await accessible(page, "my orders");
  assert.deepEqual(violations, []);
  await context.close();
});

test("a declined card ends in a cancellation whose reason the customer reads", async () => {
  const { context, page, violations } = await visitor();
  await checkOutAMug(page, "Bob Declined", `bob-${RUN}@example.com`, /Declined card/);
  await page.locator('#progress [data-status="cancelled"]').waitFor({ timeout: 30_000 });
  await assert.doesNotReject(page.getByText("The payment was declined.").first().waitFor());
  assert.deepEqual(violations, []);
  await context.close();
});

test("a pending order's page updates live, without a reload, until the saga's deadline cancels it", async () => {
  const { context, page, violations } = await visitor();
  await checkOutAMug(page, "Cy Waiting", `cy-${RUN}@example.com`, /Provider that never answers/);
  await page.locator('#progress [data-status="pending"]').waitFor();
  await page.evaluate(() => { window.stillTheSamePage = true; });
  await page.locator('#progress [data-status="cancelled"]').waitFor({ timeout: 60_000 });
  await assert.doesNotReject(page.getByText("It could not be completed in time.").waitFor());
  assert.equal(await page.evaluate(() => window.stillTheSamePage), true, "updated in place, not reloaded");
  assert.deepEqual(violations, []);
  await context.close();
});

test("without JavaScript a customer still browses and checks out", async () => {
  const { context, page } = await visitor({ javaScriptEnabled: false });
  await page.goto(`${BASE}/?q=${encodeURIComponent(`mug ${RUN}`)}`);
  await page.getByRole("link", { name: products.mug.name }).click();
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.getByRole("link", { name: "Check out" }).click();
  await signUp(page, "Dee NoScript", `dee-${RUN}@example.com`);
  await page.waitForURL(`${BASE}/checkout`);
  await fillAddress(page);
  await page.getByRole("button", { name: "Place order" }).click();
  // The page refreshes itself while the order is pending.
  await page.locator('#progress [data-status="confirmed"]').waitFor({ timeout: 30_000 });
  await context.close();
});

test("on a phone-sized screen nothing runs off the side", async () => {
  const { context, page } = await visitor({ viewport: { width: 375, height: 740 }, isMobile: true });
  for (const path of ["/", `/products/${products.lamp.id}`, "/cart", "/login"]) {
    await page.goto(`${BASE}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the screen`);
  }
  await context.close();
});

test("an administrator creates and stocks a product, meets a conflicting edit, and cancels a customer's order with a refund", async () => {
  const { context, page, violations } = await visitor();
  await openTheConsole(page);
  await accessible(page, "the admin overview");
  await screenshot(page, "admin-overview");

  // A new product, stocked, in the storefront.
  await page.getByRole("link", { name: "Products and stock" }).click();
  await page.getByRole("link", { name: "New product" }).click();
  const name = `Walnut shelf ${RUN}`;
  await page.getByLabel("SKU").fill(`SHELF-${RUN}`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Description").fill("Solid walnut, wall mounted.");
  await page.getByLabel("Price").fill("89.90");
  await page.getByLabel("Category").fill("home");
  await submit(page, page.getByRole("button", { name: "Create" }));
  await page.waitForURL(/\/admin\/products\/[0-9a-f-]{36}$/);
  const productPage = page.url();
  await waitFor(async () => {
    await page.reload();
    return (await page.locator("[data-stock]").count()) > 0;
  });
  await page.getByLabel("Change (units, e.g. 10 or -3)").fill("12");
  await page.getByLabel("Reason").fill("first delivery");
  await submit(page, page.getByRole("button", { name: "Adjust stock" }));
  await assert.doesNotReject(page.locator("[data-stock]").getByText("12").first().waitFor());
  await accessible(page, "a product in the console");
  await screenshot(page, "admin-product");
  const shopper = await context.newPage();
  await waitFor(async () => {
    await shopper.goto(`${BASE}/?q=${encodeURIComponent(`walnut ${RUN}`)}`);
    return (await shopper.getByRole("link", { name }).count()) > 0;
  });

  // Two tabs on the same version: the second save is shown the first one's change.
  const second = await context.newPage();
  await second.goto(productPage);
  await page.getByLabel("Name").fill(`${name} (oiled)`);
  await submit(page, page.getByRole("button", { name: "Save" }));
  await second.getByLabel("Name").fill(`${name} (waxed)`);
  await submit(second, second.getByRole("button", { name: "Save" }));
  await assert.doesNotReject(second.getByText("Someone else saved this product").waitFor());
  await assert.doesNotReject(second.locator(".conflict").getByText(`${name} (oiled)`).waitFor());
  assert.equal(await second.getByLabel("Name").inputValue(), `${name} (waxed)`);

  // A customer's order, found by email, cancelled: refunded and back in stock.
  const customer = await browser.newContext();
  const buyer = await customer.newPage();
  await checkOutAMug(buyer, "Eve Buyer", `eve-${RUN}@example.com`, /Visa that pays/);
  await buyer.locator('#progress [data-status="confirmed"]').waitFor({ timeout: 30_000 });
  const orderId = buyer.url().split("/").pop();
  await page.goto(`${BASE}/admin/orders`);
  await page.getByLabel("Customer email").fill(`eve-${RUN}@example.com`);
  await page.getByRole("button", { name: "Find" }).click();
  await page.getByRole("link", { name: orderId }).click();
  await assert.doesNotReject(page.getByText("Payment captured, order confirmed").waitFor());
  await accessible(page, "an order in the console");
  await screenshot(page, "admin-order");
  for (const [path, where] of [["/admin/orders", "the order search"], ["/admin/products", "the product list"],
    ["/admin/customers", "the customers"]]) {
    const other = await context.newPage();
    await other.goto(`${BASE}${path}`);
    await accessible(other, where);
    await other.close();
  }
  const before = (await api("GET", `/api/v1/products/${products.mug.id}`)).available;
  await submit(page, page.getByRole("button", { name: /Cancel for the customer/ }));
  await waitFor(async () => {
    await page.reload();
    return (await page.locator('[data-payment-status="refunded"]').count()) > 0;
  });
  await waitFor(async () => (await api("GET", `/api/v1/products/${products.mug.id}`)).available === before + 1);

  // The poisoned event, dead in inventory, replayed: taken again, dead again, tried twice.
  await page.goto(`${BASE}/admin/dead-letters`);
  const inventory = page.locator("#inventory");
  await waitFor(async () => {
    await page.reload();
    return (await inventory.getByText("commercex.order.placed.v1").count()) > 0;
  });
  await accessible(page, "the dead letters");
  await screenshot(page, "admin-dead-letters");
  await submit(page, inventory.getByRole("button", { name: "Replay" }).first());
  await waitFor(async () => {
    await page.reload();
    return (await inventory.getByText("2 attempts").count()) > 0;
  });
  assert.deepEqual(violations, []);
  await customer.close();
  await context.close();
});

test("an administrator registers a webhook endpoint, is shown its secret once and sees a test event delivered", async () => {
  // The receiver: answers 200 and keeps what it was sent.
  const received = [];
  const receiver = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      received.push({ id: request.headers["webhook-id"], signature: request.headers["webhook-signature"], body });
      response.end("ok");
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${receiver.address().port}/hooks`;
  const { context, page, violations } = await visitor();
  await openTheConsole(page);
  await page.getByRole("link", { name: "Webhooks", exact: true }).click();
  await accessible(page, "the webhook endpoints");

  await page.getByLabel("URL (https)").fill(url);
  await page.getByLabel(/Event types/).fill("commercex.order.*");
  await page.getByLabel("Description").fill(`warehouse ${RUN}`);
  await submit(page, page.getByRole("button", { name: "Register" }));
  const secret = await page.locator("[data-secret]").textContent();
  assert.match(secret, /^whsec_/);
  await accessible(page, "a new webhook endpoint");
  await page.getByRole("button", { name: "Send a test event" }).click();
  await page.waitForURL(/\/admin\/webhooks\/[0-9a-f-]{36}$/);
  assert.equal(await page.locator("[data-secret]").count(), 0, "the secret is shown once");
  await waitFor(async () => received.length === 1);
  assert.equal(JSON.parse(received[0].body).type, "commercex.webhook.test.v1");
  await waitFor(async () => {
    await page.reload();
    return (await page.getByRole("cell", { name: "HTTP 200" }).count()) > 0;
  });
  assert.equal(await page.locator(`[data-delivery="${received[0].id}"]`).count(), 1);
  await accessible(page, "a webhook endpoint and its deliveries");
  await screenshot(page, "admin-webhook");
  assert.deepEqual(violations, []);
  receiver.close();
  await context.close();
});

test("a customer cannot open the console or call its API, and a form posted from another site is refused", async () => {
  const { context, page } = await visitor();
  await addToCart(page, products.mug);
  await page.getByRole("link", { name: "Check out" }).click();
  await signUp(page, "Mallory Curious", `mallory-${RUN}@example.com`);
  await page.waitForURL(`${BASE}/checkout`);
  for (const path of ["/admin", "/admin/orders", "/admin/customers", "/admin/dead-letters", "/admin/webhooks"]) {
    const response = await page.goto(`${BASE}${path}`);
    assert.equal(response.status(), 403, path);
  }
  // The browser holds no API token: the admin API refuses whatever its pages could send.
  const api = await page.evaluate(async () => (await fetch("/api/v1/admin/orders")).status);
  assert.equal(api, 401);

  // Another site's page posts a form at the shop: refused, and the cart is as it was.
  const evil = createServer((_, response) => {
    response.setHeader("content-type", "text/html");
    response.end(`<form method="post" action="${BASE}/cart"><input name="csrf" value="guess">
      <input name="product_id" value="${products.lamp.id}"><input name="quantity" value="5">
      <button>Win a prize</button></form>`);
  });
  await new Promise((resolve) => evil.listen(0, "localhost", resolve));
  const attacker = await context.newPage();
  await attacker.goto(`http://localhost:${evil.address().port}/`);
  const [posted] = await Promise.all([
    attacker.waitForResponse((response) => response.url() === `${BASE}/cart`),
    attacker.getByRole("button", { name: "Win a prize" }).click(),
  ]);
  assert.equal(posted.status(), 403);
  evil.close();
  await page.goto(`${BASE}/cart`);
  assert.equal(await page.getByRole("row", { name: new RegExp(products.lamp.name) }).count(), 0);
  await context.close();
});
