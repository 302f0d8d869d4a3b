// Decoded logit-lens payload (inferviz/widgets/views/lens_widget.py:lens_payload) with cell accessors.
import { decodeArray } from "../shared/columns.js";

/**
 * @typedef {{nLayers: number, nPositions: number, k: number, layerNames: string[],
 *   inputTokens: string[], topTokens: string[], tokenIds: ArrayLike<number>,
 *   probs: ArrayLike<number>, entropy: ArrayLike<number>, klToFinal: ArrayLike<number>,
 *   finalTopRank: ArrayLike<number>, maxEntropy: number}} Lens
 */

/**
 * @param {any} payload
 * @returns {Lens | null}
 */
export function decodeLens(payload) {
  if (!payload || !payload.probs) return null;
  const entropy = decodeArray(payload.entropy).values;
  let maxEntropy = 0;
  for (const h of entropy) if (Number.isFinite(h) && h > maxEntropy) maxEntropy = h;
  return {
    nLayers: payload.n_layers,
    nPositions: payload.n_positions,
    k: payload.k,
    layerNames: payload.layer_names,
    inputTokens: payload.input_tokens,
    topTokens: payload.top_tokens,
    tokenIds: decodeArray(payload.token_ids).values,
    probs: decodeArray(payload.probs).values,
    entropy,
    klToFinal: decodeArray(payload.kl_to_final).values,
    finalTopRank: decodeArray(payload.final_top_rank).values,
    maxEntropy,
  };
}

/**
 * The top-k of one cell, best first.
 * @param {Lens} lens
 * @param {number} layer
 * @param {number} pos
 * @returns {{token: string, tokenId: number, prob: number}[]}
 */
export function topK(lens, layer, pos) {
  const base = (layer * lens.nPositions + pos) * lens.k;
  const out = [];
  for (let r = 0; r < lens.k; r++) {
    out.push({ token: lens.topTokens[base + r], tokenId: Number(lens.tokenIds[base + r]), prob: lens.probs[base + r] });
  }
  return out;
}

/**
 * Per-cell numbers: top-1 prob, entropy, KL to the final layer, rank of the final top token.
 * @param {Lens} lens
 * @param {number} layer
 * @param {number} pos
 */
export function cellStats(lens, layer, pos) {
  const i = layer * lens.nPositions + pos;
  return {
    topProb: lens.probs[i * lens.k],
    entropy: lens.entropy[i],
    klToFinal: lens.klToFinal[i],
    finalTopRank: lens.finalTopRank[i],
  };
}
