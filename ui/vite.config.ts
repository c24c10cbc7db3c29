// Production builds the app (index.html). `--mode test` builds the test harness instead: the
// same app behind a mocked Tauri IPC that the browser tests drive.
import { defineConfig } from "vite";

export default defineConfig(({ mode }) => ({
  base: "./",
  clearScreen: false,
  build: {
    target: "es2022",
    rollupOptions: { input: mode === "test" ? "test-harness.html" : "index.html" },
  },
}));
