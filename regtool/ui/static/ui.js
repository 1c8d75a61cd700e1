// regtool's UI: a little progressive enhancement; every page works without it.
"use strict";

// Filter as you type: fetch the filtered page and swap in its results.
function liveFilter(input) {
  const form = input.form;
  const target = document.getElementById(input.dataset.live);
  let timer = null;
  let asked = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const url = new URL(form.action, location.href);
      url.search = new URLSearchParams(new FormData(form)).toString();
      const mine = ++asked;
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok || mine !== asked) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(input.dataset.live);
      if (fresh) target.replaceChildren(...fresh.childNodes);
      history.replaceState(null, "", url);
    }, 200);
  });
}

// Copy buttons: `docker pull HOST/NAME:TAG` to the clipboard (shown if it cannot be).
function copyButton(button) {
  const line = "docker pull " + button.closest("table").dataset.pull + ":" + button.dataset.tag;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(line);
      button.textContent = "copied";
    } catch (e) {
      button.textContent = line;
    }
  });
}

// A verification under way: poll its status until it ends.
function verifyProgress(box) {
  const bar = document.getElementById("verify-progress");
  const state = document.getElementById("verify-state");
  const list = document.getElementById("verify-problems");
  async function poll() {
    const response = await fetch(box.dataset.status, { credentials: "same-origin" });
    if (!response.ok) return;
    const s = await response.json();
    bar.max = s.expected || 1;
    bar.value = s.done;
    state.textContent = s.state + (s.state === "problems" ? ": " + s.problems.length + " problem(s)" : "");
    if (s.problems) {
      list.replaceChildren(...s.problems.map((p) => {
        const li = document.createElement("li");
        li.textContent = p;
        return li;
      }));
    }
    if (s.state === "running") setTimeout(poll, 500);
  }
  poll();
}

// A storage summary being read: show its step and counts; once it ends, show its result.
function jobProgress(box) {
  const bar = document.getElementById("job-progress");
  const state = document.getElementById("job-state");
  async function poll() {
    const response = await fetch(box.dataset.status, { credentials: "same-origin" });
    if (!response.ok) return;
    const s = await response.json();
    if (s.state !== "running") {
      location.reload();
      return;
    }
    if (s.expected) {
      bar.max = s.expected;
      bar.value = s.done;
    }
    state.textContent = "Reading the store: " + s.step +
      (s.listed === undefined ? "" : ": " + s.listed + " files listed, " + s.requests + " requests") + "…";
    setTimeout(poll, 500);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-live]").forEach(liveFilter);
  document.querySelectorAll("table[data-pull] button[data-tag]").forEach(copyButton);
  const box = document.getElementById("verify");
  if (box) verifyProgress(box);
  const job = document.getElementById("job");
  if (job) jobProgress(job);
});
