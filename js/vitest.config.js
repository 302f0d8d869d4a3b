import { defineConfig } from "vitest/config";

export default defineConfig({
  // The bundle smoke test imports the built files from ../inferviz/static.
  server: { fs: { allow: [".."] } },
  test: {
    environment: "happy-dom",
    include: ["test/**/*.test.js"],
  },
});
