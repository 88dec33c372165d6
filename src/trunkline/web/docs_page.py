"""The page of ``GET /docs``: the OpenAPI document, browsable, in one self-contained file.

HTML, CSS and JavaScript in one string, shipped with the package: it loads nothing from any
other host (the response's Content-Security-Policy forbids it), so it works offline. It fetches
``/openapi.json`` and lists each operation with its parameters, request body and responses,
their schemas expanded from ``#/components/schemas``.
"""

from __future__ import annotations

__all__ = ["DOCS_HTML"]

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trunkline API</title>
<style>
  :root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 1.2rem 2rem; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 1.4rem; }
  header p { margin: .3rem 0 0; color: var(--muted); }
  main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
  h2 { font-size: 1.1rem; margin: 1.8rem 0 .6rem; text-transform: capitalize; }
  details { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: .5rem 0; }
  summary { cursor: pointer; padding: .6rem .8rem; display: flex; gap: .8rem; align-items: center; }
  .method { font: 600 .8rem monospace; padding: .15rem .5rem; border-radius: 4px; color: #fff;
            min-width: 4.2rem; text-align: center; text-transform: uppercase; }
  .get { background: #2f7d32; } .post { background: #1565c0; } .put { background: #8e5b00; }
  .patch { background: #6a1b9a; } .delete { background: #b71c1c; }
  .path { font-family: monospace; font-weight: 600; }
  .summary { color: var(--muted); }
  .body { padding: 0 1rem 1rem; border-top: 1px solid var(--line); }
  h3 { font-size: .95rem; margin: 1rem 0 .3rem; }
  pre { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .6rem;
        overflow: auto; font-size: .85rem; margin: .3rem 0; }
  .status { font-family: monospace; font-weight: 600; }
  .error { color: #b71c1c; }
</style>
</head>
<body>
<header>
  <h1 id="title">API</h1>
  <p id="info">Loading /openapi.json ...</p>
</header>
<main id="operations"></main>
<script>
"use strict";

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(schema, components, seen) {
  // Expands $ref into the schema it names, once per branch (recursive models stay refs).
  if (Array.isArray(schema)) return schema.map((item) => resolve(item, components, seen));
  if (!schema || typeof schema !== "object") return schema;
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.split("/").pop();
    if (seen.has(name) || !(name in components)) return schema;
    return resolve(components[name], components, new Set([...seen, name]));
  }
  const out = {};
  for (const [key, value] of Object.entries(schema)) out[key] = resolve(value, components, seen);
  return out;
}

function schemaBlock(content, components) {
  const media = content && content["application/json"];
  if (!media || !media.schema) return null;
  return element("pre", {}, JSON.stringify(resolve(media.schema, components, new Set()), null, 2));
}

function operation(method, path, op, components) {
  const body = element("div", { class: "body" });
  if (op.description) body.append(element("p", {}, op.description));
  if (op.parameters && op.parameters.length) {
    body.append(element("h3", {}, "Parameters"));
    for (const p of op.parameters) {
      body.append(element("div", {}, element("code", {}, p.name), " (" + p.in + ")"));
    }
  }
  if (op.requestBody) {
    body.append(element("h3", {}, "Request body"));
    const block = schemaBlock(op.requestBody.content, components);
    if (block) body.append(block);
  }
  body.append(element("h3", {}, "Responses"));
  for (const [status, response] of Object.entries(op.responses || {})) {
    body.append(element("div", {}, element("span", { class: "status" }, status), " ",
                        response.description || ""));
    const block = schemaBlock(response.content, components);
    if (block) body.append(block);
  }
  return element("details", { id: op.operationId || method + path },
    element("summary", {},
      element("span", { class: "method " + method }, method),
      element("span", { class: "path" }, path),
      element("span", { class: "summary" }, op.summary || "")),
    body);
}

async function main() {
  const target = document.getElementById("operations");
  let doc;
  try {
    const response = await fetch("/openapi.json");
    doc = await response.json();
  } catch (error) {
    document.getElementById("info").textContent = "";
    target.append(element("p", { class: "error" }, "Could not load /openapi.json: " + error));
    return;
  }
  const info = doc.info || {};
  document.title = (info.title || "API") + " " + (info.version || "");
  document.getElementById("title").textContent = (info.title || "API") + " " + (info.version || "");
  document.getElementById("info").textContent =
    (info.description ? info.description + " - " : "") + "OpenAPI " + doc.openapi;
  const components = (doc.components && doc.components.schemas) || {};
  const groups = new Map();
  for (const [path, methods] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(method, path, op, components));
    }
  }
  for (const [tag, operations] of [...groups.entries()].sort()) {
    target.append(element("h2", {}, tag), ...operations);
  }
}

main();
</script>
</body>
</html>
"""
