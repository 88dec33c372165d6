// The page's icons: small line drawings on a 24-unit grid, stroked with the text's colour.
// Each is a list of shapes: a string is a path, an array is a circle [cx, cy, r].

const SHAPES = {
  menu: ["M4 7h16", "M4 12h16", "M4 17h16"],
  bell: ["M18 16V11a6 6 0 0 0-12 0v5l-2 2h16z", "M10 21h4"],
  plus: ["M12 5v14", "M5 12h14"],
  search: [[11, 11, 6.5], "M20 20l-4.2-4.2"],
  users: [[9, 8, 3.5], "M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6", "M16 4.6a3.5 3.5 0 0 1 0 6.8", "M21.5 20c0-2.7-1.4-4.8-3.7-5.6"],
  userplus: [[9, 8, 3.5], "M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6", "M19 8v6", "M16 11h6"],
  leave: ["M10 20H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h4", "M15 16l4-4-4-4", "M19 12H9"],
  logout: ["M10 20H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h4", "M15 16l4-4-4-4", "M19 12H9"],
  send: ["M21 3L10 14", "M21 3l-6.5 18-4.5-7-7-4.5z"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  more: [[5, 12, 1], [12, 12, 1], [19, 12, 1]],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M13.5 6.5l4 4"],
  trash: ["M4 7h16", "M9.5 7V4.5h5V7", "M6 7l1 13h10l1-13"],
  hash: ["M5 9h14", "M5 15h14", "M10 4L8 20", "M16 4l-2 16"],
  lock: ["M7 11V8a5 5 0 0 1 10 0v3", "M5.5 11h13v9h-13z"],
  compass: [[12, 12, 9], "M15.5 8.5l-2 5-5 2 2-5z"],
  devices: ["M3.5 5h17v11h-17z", "M8 20h8", "M12 16v4"],
  down: ["M6 9l6 6 6-6"],
  check: ["M5 12.5l4.5 4.5L19 7"],
  archive: ["M3.5 4.5h17v4h-17z", "M5 8.5v11h14v-11", "M10 12.5h4"],
  alert: [[12, 12, 9], "M12 7.5v5.5", "M12 16.5v.5"],
  shield: ["M12 3l7 3v6c0 4.5-3 7.5-7 9-4-1.5-7-4.5-7-9V6z"],
};

const NS = "http://www.w3.org/2000/svg";

/** An icon's <svg>, hidden from assistive technology (its button carries the label). */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const shape of SHAPES[name] || []) {
    const el = document.createElementNS(NS, typeof shape === "string" ? "path" : "circle");
    if (typeof shape === "string") el.setAttribute("d", shape);
    else {
      el.setAttribute("cx", shape[0]);
      el.setAttribute("cy", shape[1]);
      el.setAttribute("r", shape[2]);
    }
    svg.append(el);
  }
  return svg;
}

/** Put its icon first in each element of root that names one (data-icon="bell"). */
export function decorateIcons(root = document) {
  for (const el of root.querySelectorAll("[data-icon]")) {
    if (!el.querySelector(":scope > svg.icon")) el.prepend(icon(el.dataset.icon));
  }
}
