// Validates an AsyncAPI document (the file named on the command line) with the AsyncAPI
// initiative's own parser: the specification's JSON Schema, its semantic rules and the
// recommended Spectral rules. Prints every diagnostic; exits 1 on an error or a warning.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const [file] = process.argv.slice(2);
const text = await readFile(file, "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const names = { 0: "error", 1: "warning", 2: "information", 3: "hint" };
for (const d of diagnostics) {
  console.log(`${names[d.severity]} ${d.code}: ${d.message} at ${d.path.join(".")}`);
}
const serious = diagnostics.filter(
  (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
);
if (!document || serious.length > 0) {
  console.log(`FAILED: ${serious.length} errors and warnings`);
  process.exit(1);
}
const messages = document.allMessages().length;
console.log(`ok: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${messages} messages`);
