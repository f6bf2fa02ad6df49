// Reflow review: a "select every record on this page" box for the bulk buttons. Without it, rows are checked
// one by one; the review buttons are plain forms (htmx, when loaded, swaps the reviewed row in place).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  const table = document.getElementById("reflow-table");
  if (!all || !table) return;
  const boxes = () => Array.from(table.querySelectorAll('tbody input[type=checkbox][name="ids"]'));
  if (!boxes().length) return;
  all.hidden = false;
  all.addEventListener("change", () => { for (const box of boxes()) box.checked = all.checked; });
  table.addEventListener("change", (event) => {
    if (event.target.name !== "ids") return;
    const checked = boxes().filter((box) => box.checked).length;
    all.checked = checked === boxes().length;
    all.indeterminate = checked > 0 && checked < boxes().length;
  });
});
