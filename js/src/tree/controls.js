// Sampler controls bound to the widget's traits, one box for each row of the widget's
// `param_schema` (k and the sampler parameters a click takes; Python's protocol.click_params).

/**
 * A row of `param_schema` as the kernel sends it (inferviz/sampler_params.py ParamSpec.to_json).
 * @typedef {{name: string, integer: boolean, default: number | null, low: number | null,
 *   high: number | null, low_open: boolean, high_open: boolean, optional: boolean, help: string,
 *   step: number}} ParamRow
 */

/**
 * One box's settings from a schema row: the input's step / min / max (an open lower end: a tenth
 * of a step above it), its tooltip (saying when empty means off).
 * @param {ParamRow} row
 * @returns {{name: string, label: string, help: string, step: string, min?: string, max?: string, optional: boolean, integer: boolean}}
 */
export function controlSpec(row) {
  const low = row.low === null ? undefined
    : row.low_open ? (row.integer ? row.low + 1 : row.low + row.step / 10) : row.low;
  const high = row.high === null ? undefined : row.high_open && row.integer ? row.high - 1 : row.high;
  return {
    name: row.name, label: row.name, step: String(row.step),
    help: row.optional ? `${row.help} (empty: off)` : row.help,
    ...(low === undefined ? {} : { min: String(low) }),
    ...(high === undefined ? {} : { max: String(high) }),
    optional: row.optional, integer: row.integer,
  };
}

/**
 * The boxes of the bar, in the schema's order.
 * @param {any} model anywidget model
 */
export function controlSpecs(model) {
  return /** @type {ParamRow[]} */ (model.get("param_schema") ?? []).map(controlSpec);
}
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
  for (const spec of controlSpecs(model)) {
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
