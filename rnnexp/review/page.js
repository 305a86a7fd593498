// rnnexp report.html: sort and filter the results table, draw the plots. No network, no other library
// than the plotly.js inlined above this script (when the page has plots).
(function () {
  "use strict";
  const table = document.getElementById("results");
  if (table) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const heads = Array.from(table.tHead.rows[0].cells);
    const filters = Array.from(table.tHead.rows[1].querySelectorAll("input"));
    const search = document.getElementById("search");
    const failedOnly = document.getElementById("failed-only");
    const shown = document.getElementById("shown");
    // what a row is searched and sorted by, read once: cells' text and their sort keys (data-v)
    const texts = rows.map((r) => Array.from(r.cells, (c) => c.textContent.toLowerCase()));
    const joined = texts.map((cells) => cells.join("\t"));
    const keyOf = (r, i) => {
      const c = r.cells[i];
      return c.dataset.v !== undefined ? c.dataset.v : c.textContent;
    };
    let sortCol = -1;
    let sortDir = 1;

    function sortBy(i) {
      sortDir = sortCol === i ? -sortDir : 1;
      sortCol = i;
      const numeric = rows.every((r) => keyOf(r, i) === "" || !isNaN(Number(keyOf(r, i))));
      const order = rows.map((r, j) => j);
      order.sort((a, b) => {
        const x = keyOf(rows[a], i);
        const y = keyOf(rows[b], i);
        if (x === "" || y === "") return (x === "") - (y === "");  // empty cells last either way
        const d = numeric ? Number(x) - Number(y) : x.localeCompare(y, undefined, { numeric: true });
        return sortDir * d;
      });
      const frag = document.createDocumentFragment();
      order.forEach((j) => frag.appendChild(rows[j]));
      body.appendChild(frag);
      heads.forEach((h, j) => h.setAttribute("aria-sort", j === i ? (sortDir > 0 ? "ascending" : "descending") : "none"));
    }

    // a column filter: ">x", "<x", ">=x", "<=x" compare numbers; "=x" is the whole cell; "!x" excludes; else a substring
    function matches(cell, sortKey, f) {
      const m = f.match(/^(>=|<=|>|<)\s*(-?[0-9.eE+-]+)$/);
      if (m) {
        const v = Number(sortKey);
        if (sortKey === "" || isNaN(v)) return false;
        const t = Number(m[2]);
        return { ">": v > t, "<": v < t, ">=": v >= t, "<=": v <= t }[m[1]];
      }
      if (f.startsWith("=")) return cell === f.slice(1);
      if (f.startsWith("!")) return f.length === 1 || !cell.includes(f.slice(1));
      return cell.includes(f);
    }

    function apply() {
      const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      const wanted = filters.map((f) => f.value.trim().toLowerCase());
      let n = 0;
      rows.forEach((r, j) => {
        let show = terms.every((t) => joined[j].includes(t)) && (!failedOnly.checked || r.classList.contains("failed"));
        for (let i = 0; show && i < wanted.length; i++) {
          if (wanted[i]) show = matches(texts[j][i], keyOf(r, i), wanted[i]);
        }
        r.hidden = !show;
        n += show;
      });
      shown.textContent = n === rows.length ? `all ${n} rows` : `${n} of ${rows.length} rows`;
    }

    heads.forEach((h, i) => h.querySelector("button").addEventListener("click", () => sortBy(i)));
    [search, failedOnly, ...filters].forEach((el) => el.addEventListener("input", apply));
    apply();
  }

  if (window.Plotly) {
    document.querySelectorAll("script.plot-spec").forEach((s) => {
      const spec = JSON.parse(s.textContent);
      window.Plotly.newPlot(s.dataset.target, spec.data, spec.layout, { responsive: true, displaylogo: false });
    });
  }
})();
