// Allure 3 configuration for rollback-drill's HTML report. `rollback-drill run` and
// `rollback-drill report` use it through `allure awesome --single-file --config` (passing
// --output and --history-path explicitly); by hand:
//   node_modules/.bin/allure awesome --single-file -c rollback_drill/evidence/allurerc.mjs \
//     -o reports/html --history-path reports/history/history.jsonl reports/allure-results
// It ships inside the package (package data), so its own output and history paths below are
// never used by the tool: they would point into the installed package.
// Every plugin is configured here and only here: a second config (or a second plugin with
// history) would append each run to the history twice.
import { fileURLToPath } from "node:url";

// Paths resolve against this file, not the caller's working directory.
const here = (rel) => fileURLToPath(new URL(rel, import.meta.url));

export default {
  name: "rollback-drill",
  output: here("./html"),
  // One JSON line per run: each drill's pass/fail and duration across runs (git-ignored).
  historyPath: here("./history/history.jsonl"),
  historyLimit: 500,
  // rollback-drill sets ROLLBACK_DRILL_APPEND_HISTORY=0 when it regenerates a report from
  // results already in the history, so no run is counted twice.
  appendHistory: process.env.ROLLBACK_DRILL_APPEND_HISTORY !== "0",
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportName: "rollback-drill",
        groupBy: ["parentSuite", "suite", "subSuite"],
      },
    },
  },
};
