// The admin dashboard's only script (no inline script: the CSP forbids it). Period presets: set the
// dates to the last N days (UTC, today included) and show them. Everything else works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("period");
  if (!form) return;
  const since = document.getElementById("since");
  const until = document.getElementById("until");
  const day = (date) => date.toISOString().slice(0, 10);
  for (const button of form.querySelectorAll("button[data-days]")) {
    button.addEventListener("click", () => {
      const days = Number(button.dataset.days);
      const end = new Date();
      const start = new Date(end.getTime() - (days - 1) * 86400000);
      since.value = day(start);
      until.value = day(end);
      form.submit();
    });
  }
});
