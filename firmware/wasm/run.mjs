// Runs the firmware's unit tests inside MicroPython (the WebAssembly port from npm) and exits 0 only when every
// test passed. The port's own command line always exits 0 and cannot import files from the host, so this runner
// copies the firmware's modules and tests into the interpreter's in-memory filesystem (/lib and /tests), builds a
// unittest suite itself (MicroPython's unittest has no TestLoader) and reads the result back.
//
// Usage: node run.mjs [--tests DIR] [test_module ...]   (default: every test_*.py of firmware/tests)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = path.dirname(fileURLToPath(import.meta.url));
const firmware = path.resolve(here, "..");
const args = process.argv.slice(2);
let testsDir = path.join(firmware, "tests");
if (args[0] === "--tests") {
  testsDir = path.resolve(args[1]);
  args.splice(0, 2);
}

function copyTree(mp, from, to) {
  mp.FS.mkdirTree(to);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== "__pycache__") {
      copyTree(mp, path.join(from, entry.name), `${to}/${entry.name}`);
    } else if (entry.isFile() && entry.name.endsWith(".py")) {
      mp.FS.writeFile(`${to}/${entry.name}`, fs.readFileSync(path.join(from, entry.name)));
    }
  }
}

const modules = (args.length ? args : fs.readdirSync(testsDir).filter((f) => /^test_.*\.py$/.test(f)))
  .map((f) => f.replace(/\.py$/, ""))
  .sort();
if (modules.length === 0) {
  console.error(`no test modules in ${testsDir}`);
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 4 * 1024 * 1024,
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
});
copyTree(mp, path.join(firmware, "fieldnode"), "/lib/fieldnode");
copyTree(mp, testsDir, "/tests");

const driver = `
import sys
import unittest
sys.path.append("/tests")
print(sys.implementation.name, ".".join(str(n) for n in sys.implementation.version[:3]))
suite = unittest.TestSuite()
for name in ${JSON.stringify(modules)}:
    module = __import__(name)
    for attr in sorted(dir(module)):
        obj = getattr(module, attr)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase:
            suite.addTest(obj)
result = unittest.TextTestRunner().run(suite)
summary = [result.testsRun, result.failuresNum, result.errorsNum, result.skippedNum, result.wasSuccessful()]
`;

try {
  mp.runPython(driver);
} catch (error) {
  console.error(error.name === "PythonError" ? error.message : error);
  process.exit(1);
}
const [run, failures, errors, skipped, ok] = mp.PyProxy.toJs(mp.globals.get("summary"));
const failed = failures + errors;
console.log(`micropython: ${run - failed - skipped} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && run > 0 ? 0 : 1);
