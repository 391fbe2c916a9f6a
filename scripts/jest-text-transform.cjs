// Jest transform for files imported as text (the remote Python helper): the
// module's default export is the file's contents, as esbuild's `text` loader
// gives it in the bundle.
module.exports = {
  process(sourceText) {
    return { code: `module.exports = ${JSON.stringify(sourceText)};\n` }
  }
}
