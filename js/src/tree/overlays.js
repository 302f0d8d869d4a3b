// What the strategy columns say about a node: which strategy made its branch (the edge colour),
// beam kept / pruned, SMC particles and weights, contrastive scores; and the hover rows.
import { cell } from "../shared/columns.js";
import { formatNumber } from "../shared/format.js";

export const CORE_COLUMNS = [
  "node_id", "parent_id", "depth", "token_id", "token",
  "raw_logprob", "prob", "rank", "entropy", "cum_logprob",
];

/** The `strategy` column's values, grouped into the branch kinds the legend names. */
const KIND_OF = {
  greedy: "greedy", sample: "sample", top_k: "sample", top_p: "sample", min_p: "sample",
  beam: "beam", smc: "smc", contrastive: "contrastive", bfs: "search", threshold: "search",
  custom: "custom",
};

/** Legend text for each branch kind, in legend order. */
export const KIND_LABELS = {
  click: "expanded node by node (clicks)",
  greedy: "greedy",
  sample: "sample",
  beam: "beam (kept)",
  "beam-pruned": "beam (pruned)",
  smc: "SMC particles (×count, w weight)",
  contrastive: "contrastive (pick %: softmax of the cd scores; cd: log p_expert − log p_amateur, nats; dotted: implausible)",
  search: "bfs / threshold",
  custom: "custom",
  other: "other strategy",
  intervened: "intervened (steer / ablate / patch; KL vs plain)",
  constrained: "constrained (cut N%: the model's probability the constraint removed there)",
  cut: "cut by the constraint: the model's likelier illegal tokens (struck)",
};

/**
 * @typedef {{kind: string, classes: string[], badges: string[], chosen: boolean, intervened?: boolean,
 *            constrained?: boolean, probPrefix?: string}} Overlay
 * `probPrefix` names the probability a node's label shows when it is not the usual processed
 * one: "pick" on contrastive nodes (the softmax of the cd scores, not the model's probability).
 */

/** A signed score as a badge shows it: `+0.42`, `-1.30`. @param {number} x */
export const signed = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)}`;

/**
 * Branch kind, CSS classes and short badges for the node at `row`, from whichever strategy
 * columns exist. `chosen` says a strategy picked this token (it is never folded away).
 * @param {import("../shared/columns.js").Table} table
 * @param {number} row
 * @returns {Overlay}
 */
export function nodeOverlay(table, row) {
  const classes = [];
  const badges = [];
  const strategy = cell(table, "strategy", row);
  let kind = typeof strategy === "string" ? (KIND_OF[strategy] ?? "other") : "click";
  let chosen = kind !== "click";
  const kept = cell(table, "beam_kept", row);
  if (kept === true) classes.push("beam-kept");
  if (kept === false) { classes.push("beam-pruned"); kind = "beam-pruned"; chosen = false; }
  const count = cell(table, "smc_count", row);
  if (typeof count === "number") {
    if (count > 0) badges.push(`×${formatNumber(count)}`);
    else { classes.push("smc-extinct"); chosen = false; }
  }
  const weight = cell(table, "smc_final_weight", row) ?? cell(table, "smc_weight", row);
  if (typeof weight === "number" && Number.isFinite(weight) && (count ?? 1) > 0) {
    badges.push(`w${weight.toFixed(2)}`);
  }
  if (cell(table, "smc_resampled", row) === true) classes.push("smc-resampled");
  const plausible = cell(table, "cd_plausible", row);
  if (plausible === false) classes.push("cd-implausible");
  if (cell(table, "cd_chosen", row) === true) classes.push("cd-chosen");
  if (cell(table, "cd_chosen", row) === false) chosen = false;
  const score = cell(table, "cd_score", row);
  if (plausible !== false && typeof score === "number" && Number.isFinite(score)) {
    badges.push(`cd ${signed(score)}`);
  }
  const contrastive = plausible !== null && plausible !== undefined;
  const mark = cell(table, "mark", row);
  if (typeof mark === "string" && mark) { badges.unshift(`◆${mark}`); classes.push("marked"); }
  // A node of an intervened branch: drawn dashed in its own colour, its KL from the plain
  // model as a badge; never folded away (it was asked for).
  const intervention = cell(table, "intervention", row);
  const intervened = typeof intervention === "string" && intervention !== "";
  if (intervened) {
    classes.push("intervened");
    chosen = true;
    const kl = cell(table, "kl", row);
    if (typeof kl === "number" && Number.isFinite(kl)) badges.push(`KL ${formatNumber(kl, 2)}`);
  }
  // A node grown under a constraint: its best legal sibling carries what the constraint cut.
  const constraint = cell(table, "constraint", row);
  const constrained = typeof constraint === "string" && constraint !== "";
  if (constrained) {
    classes.push("constrained");
    const mass = cell(table, "log_legal_mass", row);
    if (cell(table, "legal_rank", row) === 0 && typeof mass === "number" && Number.isFinite(mass)) {
      const cut = 1 - Math.exp(mass);
      if (cut >= 0.01) badges.push(`cut ${Math.round(cut * 100)}%`);
    }
  }
  if (kind === "click" && !classes.length && !badges.length) return { kind, classes: [], badges: [], chosen };
  const overlay = { kind, classes: [`by-${kind}`, ...classes], badges, chosen, intervened, constrained };
  return contrastive ? { ...overlay, probPrefix: "pick" } : overlay;
}

/**
 * The illegal tokens a constraint cut at a parent, best first, from the `cut_alternatives` of
 * its constrained children: `[{tokenId, token, prob}]` (prob: the model's raw probability).
 * @param {import("../shared/columns.js").Table} table
 * @param {number[]} childRows
 * @returns {{tokenId: number, token: string, prob: number}[]}
 */
export function cutAlternatives(table, childRows) {
  for (const row of childRows) {
    const cut = cell(table, "cut_alternatives", row);
    if (!Array.isArray(cut) || !cut.length) continue;
    return cut.filter((c) => Array.isArray(c) && c.length === 3).map(([tokenId, token, logprob]) => ({
      tokenId: Number(tokenId), token: String(token), prob: Math.exp(Number(logprob)),
    }));
  }
  return [];
}

/**
 * Rows of [label, text] for the hover tooltip: the core numbers, then every meta column.
 * @param {import("../shared/columns.js").Table} table
 * @param {number} row
 * @returns {[string, string][]}
 */
export function tooltipRows(table, row) {
  const rawLogprob = cell(table, "raw_logprob", row);
  const cdScore = cell(table, "cd_score", row);
  const contrastive = cdScore !== null && cdScore !== undefined;
  /** @type {[string, string][]} */
  const rows = [
    [contrastive ? "pick prob (softmax of cd scores)" : "prob", formatNumber(cell(table, "prob", row), 4)],
    ["raw_logprob", formatNumber(rawLogprob, 4)],
    ["raw prob", formatNumber(rawLogprob === null ? null : Math.exp(rawLogprob), 4)],
    ["rank", formatNumber(cell(table, "rank", row))],
    ["entropy", formatNumber(cell(table, "entropy", row), 3)],
    ["cum_logprob", formatNumber(cell(table, "cum_logprob", row), 3)],
    ["token_id", formatNumber(cell(table, "token_id", row))],
    ["node_id", formatNumber(cell(table, "node_id", row))],
  ];
  const mass = cell(table, "log_legal_mass", row);
  if (typeof mass === "number") {
    rows.push(["legal mass at parent", `${formatNumber(Math.exp(mass) * 100, 3)}% (the constraint cut the rest)`]);
    const best = cell(table, "best_illegal_token", row);
    if (typeof best === "string") {
      rows.push(["model's best (illegal)", `${best} · margin ${formatNumber(cell(table, "constraint_margin", row), 3)} nats`]);
    }
  }
  if (contrastive) rows.push(...contrastiveRows(table, row));
  for (const name of table.names) {
    if (CORE_COLUMNS.includes(name) || EXPLAINED.includes(name)) continue;
    const value = cell(table, name, row);
    if (value === null || value === undefined) continue;
    rows.push([name, formatNumber(value, 4)]);
  }
  return rows;
}

/** Columns the hover card shows with an explanation instead of under their raw names. */
const EXPLAINED = ["cut_alternatives", "cd_score", "cd_expert_logprob", "cd_amateur_logprob"];

/**
 * The hover rows of a contrastive node: its cd score and what it is made of.
 * @param {import("../shared/columns.js").Table} table
 * @param {number} row
 * @returns {[string, string][]}
 */
function contrastiveRows(table, row) {
  const score = cell(table, "cd_score", row);
  const expert = cell(table, "cd_expert_logprob", row);
  const amateur = cell(table, "cd_amateur_logprob", row);
  const prob = (/** @type {any} */ lp) => (typeof lp === "number" ? formatNumber(Math.exp(lp), 4) : "—");
  const scoreText = typeof score === "number" && Number.isFinite(score)
    ? `${signed(score)} nats (log p_expert − log p_amateur)`
    : "−∞ (outside the plausibility set)";
  return [["cd score", scoreText], ["expert prob", prob(expert)], ["amateur prob", prob(amateur)]];
}
