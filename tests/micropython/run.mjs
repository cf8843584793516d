// Run a MicroPython script under the WebAssembly port of MicroPython in Node.js.
//
//   node run.mjs SCRIPT [DEST=SRC ...]
//
// Every DEST=SRC pair copies the host file SRC into MicroPython's in-memory
// filesystem at DEST (folders are created), so modules can be imported from it.
// The script runs with runPythonAsync, so it may use top-level await.
// The script's stdout and stderr are passed through; the exit status is 1 when
// the script raised (MicroPython prints the traceback on stderr), 0 otherwise.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [script, ...files] = process.argv.slice(2);
if (!script) {
  console.error("usage: node run.mjs SCRIPT [DEST=SRC ...]");
  process.exit(2);
}
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
for (const pair of files) {
  const [dest, src] = pair.split("=");
  let dir = "";
  for (const part of path.posix.dirname(dest).split("/").filter(Boolean)) {
    dir += "/" + part;
    try { mp.FS.mkdir(dir); } catch (e) { /* exists */ }
  }
  mp.FS.writeFile(dest, fs.readFileSync(src));
}
try {
  await mp.runPythonAsync(fs.readFileSync(script, "utf8"));
} catch (err) {
  process.stderr.write(String(err && err.message ? err.message : err) + "\n");
  process.exit(1);
}
// Firmware tasks left running (timers of the JS-backed asyncio) must not keep Node alive.
process.exit(0);
