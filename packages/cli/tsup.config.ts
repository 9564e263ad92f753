import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  target: "node20",
  dts: { banner: '/// <reference lib="esnext.disposable" />' },
  clean: true,
  sourcemap: true,
  // The example drivers are private workspace packages: the published command carries them.
  noExternal: [/^@devref\/example-/],
});
