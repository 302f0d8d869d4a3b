// Sampler controls (k, temperature, top_k, top_p, min_p) bound to the widget's traits.

/** @type {{name: string, label: string, help: string, step: string, min?: string, max?: string, optional: boolean, integer: boolean}[]} */
export const CONTROLS = [
  { name: "k", label: "k", help: "children a click adds: the k most likely next tokens", step: "1", min: "1", max: "50", optional: false, integer: true },
  { name: "temperature", label: "temperature", help: "softmax temperature of the children's probabilities", step: "0.1", min: "0.01", optional: false, integer: false },
  { name: "top_k", label: "top_k", help: "keep only the top_k most likely tokens (empty: off)", step: "1", min: "1", optional: true, integer: true },
  { name: "top_p", label: "top_p", help: "keep the smallest set with mass >= top_p (empty: off)", step: "0.05", min: "0", max: "1", optional: true, integer: false },
  { name: "min_p", label: "min_p", help: "keep tokens with p >= min_p x the top p (empty: off)", step: "0.01", min: "0", max: "1", optional: true, integer: false },
];
// Said before the boxes: they shape what a click on a node adds, not what Run does.
export const CONTROLS_LEAD = "clicks on a node add:";

/**
 * Parse an input's text into a trait value; `undefined` means "not a valid value".
 * Empty optional fields are `null` (off).
 * @param {string} text
 * @param {{optional: boolean, integer: boolean}} spec
 * @returns {number | null | undefined}
 */
export function parseControl(text, spec) {
  const trimmed = text.trim();
  if (trimmed === "") return spec.optional ? null : undefined;
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return undefined;
  if (spec.integer && !Number.isInteger(value)) return undefined;
  return value;
}

/**
 * Build the controls bar; returns it and a function that refreshes inputs from the model.
 * @param {any} model anywidget model
 * @param {(message: string) => void} showError
 */
export function createControls(model, showError) {
  const bar = document.createElement("div");
  bar.className = "inferviz-controls";
  const lead = document.createElement("span");
  lead.className = "inferviz-controls-lead";
  lead.textContent = CONTROLS_LEAD;
  lead.title = "a click on a leaf adds its k most likely next tokens, under these settings";
  bar.appendChild(lead);
  /** @type {Map<string, HTMLInputElement>} */
  const inputs = new Map();
  for (const spec of CONTROLS) {
    const label = document.createElement("label");
    label.textContent = spec.label;
    label.title = spec.help;
    const input = document.createElement("input");
    input.type = "number";
    input.name = spec.name;
    input.step = spec.step;
    if (spec.min) input.min = spec.min;
    if (spec.max) input.max = spec.max;
    if (spec.optional) input.placeholder = "off";
    input.addEventListener("change", () => {
      const value = parseControl(input.value, spec);
      if (value === undefined) {
        showError(`${spec.name}: "${input.value}" is not a valid ${spec.integer ? "integer" : "number"}`);
        sync();
        return;
      }
      model.set(spec.name, value);
      model.save_changes();
    });
    label.appendChild(input);
    bar.appendChild(label);
    inputs.set(spec.name, input);
  }
  function sync() {
    for (const [name, input] of inputs) {
      const value = model.get(name);
      input.value = value === null || value === undefined ? "" : String(value);
    }
  }
  sync();
  return { bar, inputs, sync };
}
