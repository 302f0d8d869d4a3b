// Small sequential colour scales (no d3-scale needed): value in [0, 1] -> CSS colour.

// Stops of a light-to-dark blue-violet ramp, readable with dark text at the light end.
const PROB_STOPS = [
  [240, 244, 250],
  [180, 205, 235],
  [100, 150, 215],
  [55, 90, 185],
  [40, 30, 120],
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
export const probColor = (p) => ramp(PROB_STOPS, p);

/** @param {number} t entropy scaled to [0, 1] */
export const entropyColor = (t) => ramp(ENTROPY_STOPS, t);

/**
 * Dark or light text for a background position on a ramp.
 * @param {number} t
 */
export const textColorOn = (t) => (t > 0.55 ? "#fff" : "#111");
