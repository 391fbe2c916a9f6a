// Files imported as text: esbuild's `text` loader (scripts/bundle.mjs) and the
// Jest transform (scripts/jest-text-transform.cjs) turn them into a default
// export holding the file's contents.
declare module '*.py' {
  const text: string
  export default text
}
