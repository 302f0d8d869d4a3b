// Colour scales (no d3-scale needed): value in [0, 1] -> CSS colour.
//
// Probability uses viridis (perceptually uniform, readable in greyscale and by most colour-blind
// readers): the same probability has the same colour in the tree, its legend and the lens.

// viridis at t = 0, 0.125, ..., 1 (matplotlib's table, sampled).
export const VIRIDIS_STOPS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];
// Entropy: low (confident) light yellow, high (uncertain) dark red.
const ENTROPY_STOPS = [
  [255, 250, 220],
  [253, 205, 120],
  [240, 130, 60],
  [190, 50, 40],
  [100, 10, 30],
];

/**
 * @param {number[][]} stops
 * @param {number} t
 */
function ramp(stops, t) {
  if (t === null || t === undefined || Number.isNaN(t)) return "rgb(220,220,220)";
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const [r, g, b] = [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  return `rgb(${r},${g},${b})`;
}

/** @param {number} p probability in [0, 1] */
export const probColor = (p) => ramp(VIRIDIS_STOPS, p);

/** @param {number} t entropy scaled to [0, 1] */
export const entropyColor = (t) => ramp(ENTROPY_STOPS, t);

/**
 * A CSS linear-gradient of the probability scale, left (0) to right (1), for legends.
 * @returns {string}
 */
export function probGradient() {
  const stops = VIRIDIS_STOPS.map((_, i) => {
    const t = i / (VIRIDIS_STOPS.length - 1);
    return `${probColor(t)} ${Math.round(t * 100)}%`;
  });
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

// Below this probability white text has the higher contrast on viridis, above it #111 does
// (relative luminances cross near t = 0.44; the contrast ratio is >= 4.3 on either side).
export const VIRIDIS_LIGHT_TEXT_BELOW = 0.44;

/**
 * Dark or light text for a background at position `t` of a ramp (viridis is dark at 0, light at 1;
 * the entropy ramp is light at 0, dark at 1).
 * @param {number} t
 * @param {"prob" | "entropy"} [scale]
 */
export const textColorOn = (t, scale = "entropy") =>
  scale === "prob" ? (t < VIRIDIS_LIGHT_TEXT_BELOW ? "#fff" : "#111") : (t > 0.55 ? "#fff" : "#111");
