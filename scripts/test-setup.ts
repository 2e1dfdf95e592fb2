// Runs once before the test files (tap `before`): creates the emulators' CA so that every test process,
// started with NODE_EXTRA_CA_CERTS pointing at it, trusts the emulators' HTTPS origin from its first line;
// and bundles the service's entry (src/server.ts) for the tests that run it as a process (replicas of a
// fleet, start-up and shutdown): one JavaScript file loads in a third of the CPU the TypeScript loader
// takes, and a run starts some forty such processes. Same sources, same esbuild that strips their types.
import { build } from 'esbuild'
import { ensurePki } from '../emulators/pki.ts'
import { SERVER_BUNDLE } from '../test/helpers/server-bundle.ts'

await ensurePki()
await build({
  entryPoints: ['src/server.ts'],
  outfile: SERVER_BUNDLE,
  bundle: true,
  // Dependencies are loaded from node_modules as they are in production, not copied in.
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning'
})
