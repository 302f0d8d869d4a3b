// Strategy overlays: how beam, SMC and contrastive-decoding meta columns change a node's look.
import { cell } from "./columns.js";
import { formatNumber } from "./format.js";

export const CORE_COLUMNS = [
  "node_id", "parent_id", "depth", "token_id", "token",
  "raw_logprob", "prob", "rank", "entropy", "cum_logprob",
];

/**
 * CSS classes and short badges for the node at `row`, from whichever strategy columns exist.
 * @param {import("./columns.js").Table} table
 * @param {number} row
 * @returns {{classes: string[], badges: string[]}}
 */
export function nodeOverlay(table, row) {
  const classes = [];
  const badges = [];
  const kept = cell(table, "beam_kept", row);
  if (kept === true) classes.push("beam-kept");
  if (kept === false) classes.push("beam-pruned");
  const count = cell(table, "smc_count", row);
  if (typeof count === "number" && count !== null) {
    if (count > 0) badges.push(`×${formatNumber(count)}`);
    else classes.push("smc-extinct");
  }
  if (cell(table, "smc_resampled", row) === true) classes.push("smc-resampled");
  const plausible = cell(table, "cd_plausible", row);
  if (plausible === false) classes.push("cd-implausible");
  const score = cell(table, "cd_score", row);
  if (plausible !== false && typeof score === "number" && Number.isFinite(score)) {
    badges.push(`cd ${score.toFixed(2)}`);
  }
  return { classes, badges };
}

/**
 * Rows of [label, text] for the hover tooltip: the core numbers, then every meta column.
 * @param {import("./columns.js").Table} table
 * @param {number} row
 * @returns {[string, string][]}
 */
export function tooltipRows(table, row) {
  const rawLogprob = cell(table, "raw_logprob", row);
  /** @type {[string, string][]} */
  const rows = [
    ["prob", formatNumber(cell(table, "prob", row), 4)],
    ["raw_logprob", formatNumber(rawLogprob, 4)],
    ["raw prob", formatNumber(rawLogprob === null ? null : Math.exp(rawLogprob), 4)],
    ["rank", formatNumber(cell(table, "rank", row))],
    ["entropy", formatNumber(cell(table, "entropy", row), 3)],
    ["cum_logprob", formatNumber(cell(table, "cum_logprob", row), 3)],
    ["token_id", formatNumber(cell(table, "token_id", row))],
    ["node_id", formatNumber(cell(table, "node_id", row))],
  ];
  for (const name of table.names) {
    if (CORE_COLUMNS.includes(name)) continue;
    const value = cell(table, name, row);
    if (value === null || value === undefined) continue;
    rows.push([name, formatNumber(value, 4)]);
  }
  return rows;
}
