// Bundle the widget front ends into ../inferviz/static (ESM, minified, no CDN imports).
import * as esbuild from "esbuild";

const options = {
  entryPoints: { tree: "src/tree/tree_widget.js", lens: "src/lens/lens_widget.js", text_view: "src/text/text_view.js" },
  outdir: "../inferviz/static",
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  logLevel: "info",
  legalComments: "none",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context({ ...options, minify: false });
  await ctx.watch();
} else {
  await esbuild.build(options);
}
