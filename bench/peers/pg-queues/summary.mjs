// Reads run.sh's results (one JSON line per run) and prints a markdown table of every run, the
// medians, and Rota's ratio to each peer, the best peer named.
//
//   node summary.mjs RESULTS_FILE
import { readFileSync } from "node:fs";

const lines = readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const peers = [...new Set(lines.map((l) => l.peer))];
const fmt = (x) => (x === null || x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
const median = (xs) => {
  xs = [...xs].sort((a, b) => a - b);
  const m = Math.floor(xs.length / 2);
  return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
};

console.log("\n| run | system | enqueue (tasks/s) | drain (tasks/s) | tasks | load (1 min) |");
console.log("|---|---|---:|---:|---:|---:|");
const seen = {};
for (const l of lines) {
  seen[l.peer] = (seen[l.peer] || 0) + 1;
  console.log(`| ${seen[l.peer]} | ${l.peer} | ${fmt(l.enqueue_per_s)} | ${fmt(l.drain_per_s)} | ${l.tasks} | ${l.load ?? "-"} |`);
}

const med = {};
for (const p of peers) {
  const ls = lines.filter((l) => l.peer === p);
  med[p] = {
    enqueue: median(ls.map((l) => l.enqueue_per_s)),
    drain: median(ls.map((l) => l.drain_per_s)),
    enqueueRange: [Math.min(...ls.map((l) => l.enqueue_per_s)), Math.max(...ls.map((l) => l.enqueue_per_s))],
    drainRange: [Math.min(...ls.map((l) => l.drain_per_s)), Math.max(...ls.map((l) => l.drain_per_s))],
    runs: ls.length,
  };
}

console.log("\n| system | runs | enqueue, median (range) | drain, median (range) | Rota / it, enqueue | Rota / it, drain |");
console.log("|---|---:|---:|---:|---:|---:|");
const ratio = (a, b) => (a / b).toFixed(2) + "×";
for (const p of peers) {
  const m = med[p];
  console.log(`| ${p} | ${m.runs} | ${fmt(m.enqueue)} (${fmt(m.enqueueRange[0])}–${fmt(m.enqueueRange[1])}) |` +
    ` ${fmt(m.drain)} (${fmt(m.drainRange[0])}–${fmt(m.drainRange[1])}) |` +
    ` ${p === "rota" || !med.rota ? "" : ratio(med.rota.enqueue, m.enqueue)} |` +
    ` ${p === "rota" || !med.rota ? "" : ratio(med.rota.drain, m.drain)} |`);
}

const others = peers.filter((p) => p !== "rota");
if (med.rota && others.length) {
  const bestDrain = others.reduce((a, b) => (med[b].drain > med[a].drain ? b : a));
  const bestEnq = others.reduce((a, b) => (med[b].enqueue > med[a].enqueue ? b : a));
  const d = med.rota.drain / med[bestDrain].drain, e = med.rota.enqueue / med[bestEnq].enqueue;
  console.log(`\nbest peer: drain ${bestDrain} (${fmt(med[bestDrain].drain)}/s), enqueue ${bestEnq} (${fmt(med[bestEnq].enqueue)}/s)`);
  console.log(`issue 28: rota drain ${d.toFixed(2)}× the best peer's (goal 3×: ${d >= 3 ? "met" : "not met"}),` +
    ` enqueue ${e.toFixed(2)}× (goal 2×: ${e >= 2 ? "met" : "not met"})`);
}
