'use strict'
// How tap runs the TypeScript tests (tsconfig.json, "ts-node"): tap's TypeScript plugin loads every test
// file through ts-node in transpile-only mode, and this module is ts-node's transpiler. esbuild strips the
// types of a module in about a millisecond where TypeScript's transpileModule takes tens; every test
// process imports the service, the emulators and their dependencies afresh, so TypeScript's transpiling
// was most of a test file's CPU before its first test ran (about 6 s of 12). Output is kept on disk by
// content, so the ~95 test processes of a run transpile each module once. Types are checked once, by
// `npm run typecheck`.
const { createHash } = require('node:crypto')
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { transformSync, version } = require('esbuild')

const cacheDir = join(tmpdir(), `jir-ts-esbuild-${version}`)

exports.create = function create ({ nodeModuleEmitKind }) {
  return {
    transpile (input, { fileName }) {
      const options = {
        loader: fileName.endsWith('.tsx') ? 'tsx' : 'ts',
        // The package is ESM ("type": "module"); ts-node says so, or names CommonJS for .cts files.
        format: nodeModuleEmitKind === 'nodecjs' || fileName.endsWith('.cts') ? 'cjs' : 'esm',
        target: 'es2023',
        sourcemap: 'external',
        sourcefile: fileName,
        // As tsconfig.json compiles: imports kept as written, class fields with [[Define]] semantics.
        tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } }
      }
      const key = createHash('sha256').update(JSON.stringify(options)).update('\0').update(input).digest('hex')
      const file = join(cacheDir, `${key}.json`)
      try {
        return JSON.parse(readFileSync(file, 'utf8'))
      } catch {}
      const { code, map } = transformSync(input, options)
      const output = { outputText: code, sourceMapText: map }
      try {
        mkdirSync(cacheDir, { recursive: true })
        // Written aside and renamed: a process reading it never sees half a file.
        const partial = `${file}.${process.pid}.tmp`
        writeFileSync(partial, JSON.stringify(output))
        renameSync(partial, file)
      } catch {}
      return output
    }
  }
}
